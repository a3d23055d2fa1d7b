"""Structured (JSON lines) logs in rotating files under KILN_HOME/logs, and safe access to that folder.

``setup_logging("gateway")`` is called once per server process; each process writes its own file
(``kiln-gateway.log``, ``kiln-worker.log``) because rotating one file from two processes loses lines.
``LogDirectory`` is what the ``/logs`` routes use: it only ever opens regular files that really live in
the log folder (no ``..``, no absolute paths, no symlinks leading elsewhere).
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import queue
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kiln.errors import BadRequest, NotFound

STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={...}`` fields are kept as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        for key, value in vars(record).items():
            if key not in STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_configured: dict[str, logging.Handler] = {}


class SizeRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler that formats each record once and checks the size with ``tell()`` only
    (the stdlib one formats twice and stats the file on every record)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record) + self.terminator
            if self.stream is None:
                self.stream = self._open()
            if self.maxBytes > 0 and self.stream.tell() + len(message) >= self.maxBytes:
                self.doRollover()
            self.stream.write(message)
            self.stream.flush()
        except Exception:
            self.handleError(record)


def rotating_json_handler(path: Path, level: str = "INFO", max_bytes: int = 10 << 20, backups: int = 5) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = SizeRotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    handler.setLevel(level.upper())
    return handler


def setup_logging(component: str, logs_dir: Path, level: str = "INFO", max_bytes: int = 10 << 20, backups: int = 5) -> Path:
    """Send the root logger's records, as JSON lines, to ``logs_dir/kiln-<component>.log`` (rotated)."""
    path = Path(logs_dir) / f"kiln-{component}.log"
    if component in _configured:
        return path
    handler = rotating_json_handler(path, level, max_bytes, backups)
    # Servers log from their event loop: hand records to a thread that does the file I/O.
    records: queue.SimpleQueue = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, handler, respect_handler_level=True)
    listener.start()
    atexit.register(listener.stop)
    queued = logging.handlers.QueueHandler(records)
    queued.setLevel(handler.level)
    root = logging.getLogger()
    root.addHandler(queued)
    if root.level > handler.level or root.level == logging.NOTSET:
        root.setLevel(handler.level)
    for name in ("kiln", "bentos"):
        logging.getLogger(name).setLevel(handler.level)
    _configured[component] = queued
    return path


class LogDirectory:
    def __init__(self, root: Path):
        self.root = Path(root)

    def resolve(self, name: str) -> Path:
        """The log file called ``name``: 400 for names that try to leave the folder, 404 if absent."""
        if not name or name in {".", ".."} or "/" in name or "\\" in name or "\x00" in name or name.startswith("."):
            raise BadRequest(f"Invalid log file name {name!r}: give a file name from GET /logs", {"log_file": name})
        path = self.root / name
        if path.is_symlink():
            real = path.resolve()
            if real.parent != self.root.resolve():
                raise BadRequest(f"Log file {name!r} points outside the log directory", {"log_file": name})
        if not path.is_file():
            raise NotFound(f"No log file {name!r}. Available: {', '.join(self.names()) or 'none'}", {"log_file": name})
        return path

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_file() and not p.is_symlink() and not p.name.startswith("."))

    def list(self) -> list[dict[str, Any]]:
        files = []
        for name in self.names():
            stat = (self.root / name).stat()
            files.append(
                {
                    "name": name,
                    "size_bytes": stat.st_size,
                    "size_mb": round(stat.st_size / 1e6, 3),
                    "modified": datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(),
                    "age_seconds": round(time.time() - stat.st_mtime, 1),
                }
            )
        return files

    def read(self, name: str, lines: int | None = None, from_end: bool = True) -> tuple[str, int]:
        """(text of up to ``lines`` lines from the end or the start, total number of lines)."""
        path = self.resolve(name)
        total = 0
        kept: deque[str] | list[str] = deque(maxlen=lines) if (from_end and lines) else []
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                total += 1
                if from_end or lines is None or len(kept) < lines:
                    kept.append(line)
        return "".join(kept), total

    def clear(self, name: str) -> int:
        """Empty the file (writers keep their handle, so truncate rather than delete); returns bytes freed."""
        path = self.resolve(name)
        size = path.stat().st_size
        with path.open("r+b") as handle:
            handle.truncate(0)
        os.utime(path)
        return size
