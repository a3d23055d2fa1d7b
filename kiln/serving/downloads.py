"""Model downloads started from the API: through Dagster (GraphQL) when its webserver is up, otherwise
with the same kiln fetch code in a background thread. Each download has an id, a state and progress,
kept in Kiln's records database when one is given (``DownloadRecords``), so ids outlive the process.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kiln.catalog import CatalogEntry
from kiln.errors import InvalidInput, KilnError, NotFound
from kiln.files import directory_size
from kiln.integrations.dagster_graphql import DagsterGraphQL
from kiln.serving.download_records import DownloadRecords
from kiln.serving.import_policy import ImportPolicy
from kiln.settings import get_settings
from kiln.store import ModelStore

log = logging.getLogger("kiln.downloads")

DONE = {"completed", "failed", "canceled"}
DAGSTER_STATES = {
    "QUEUED": "queued", "NOT_STARTED": "queued", "MANAGED": "queued", "STARTING": "running", "STARTED": "running",
    "SUCCESS": "completed", "FAILURE": "failed", "CANCELING": "running", "CANCELED": "canceled",
}


def expected_bytes(entry: CatalogEntry) -> int | None:
    """How many bytes the download will write, when it can be known up front."""
    try:
        if entry.source == "package":
            from kiln.sources import package_model_dir

            return directory_size(package_model_dir(entry.id))
        if entry.source == "path":
            root = Path(entry.id).expanduser()
            return root.stat().st_size if root.is_file() else directory_size(root)
    except (KilnError, OSError):
        return None
    return int(entry.size_mb * 1e6) if entry.size_mb else None


@dataclass
class Download:
    id: str
    model_name: str
    source: str
    model_id: str
    task: str
    via: str  # "dagster" or "background"
    state: str = "queued"
    message: str = "Queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    expected_bytes: int | None = None
    downloaded_bytes: int = 0
    path: str | None = None
    version: str | None = None
    reused: bool | None = None
    dagster_run_id: str | None = None
    dagster_run_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def progress(self) -> float:
        if self.state == "completed":
            return 1.0
        if self.state == "queued" or not self.expected_bytes:
            return 0.0
        return round(min(0.99, self.downloaded_bytes / self.expected_bytes), 4)

    def eta_seconds(self) -> float | None:
        if self.state in DONE:
            return 0.0
        if not self.started or self.progress <= 0:
            return None
        elapsed = time.time() - self.started
        return round(elapsed / self.progress * (1 - self.progress), 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "download_id": self.id,
            "model_name": self.model_name,
            "source": self.source,
            "model_id": self.model_id,
            "task": self.task,
            "via": self.via,
            "status": self.state,
            "progress": self.progress,
            "progress_percent": round(100 * self.progress, 1),
            "eta_seconds": self.eta_seconds(),
            "message": self.message,
            "downloaded_bytes": self.downloaded_bytes,
            "expected_bytes": self.expected_bytes,
            "path": self.path,
            "version": self.version,
            "reused": self.reused,
            "dagster_run_id": self.dagster_run_id,
            "dagster_run_url": self.dagster_run_url,
            "options": self.options,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "elapsed_seconds": round((self.finished or time.time()) - (self.started or self.created), 3),
        }


class DownloadManager:
    def __init__(
        self, store: ModelStore, dagster: DagsterGraphQL | None = None, asset: str = "raw_model",
        records: DownloadRecords | None = None, policy: ImportPolicy | None = None,
    ):
        self.store = store
        self.policy = policy or ImportPolicy.from_settings(get_settings())
        self.dagster = dagster
        self.asset = asset
        self.records = records
        self.downloads: dict[str, Download] = {}  # the ones this process started or polled
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kiln-download")

    def _save(self, download: Download) -> None:
        if self.records is None:
            return
        try:
            self.records.save(download)
        except Exception:  # the download itself goes on; its record is only as fresh as the last save
            log.exception("could not store the download record", extra={"download_id": download.id})

    def active(self, name: str) -> Download | None:
        with self._lock:
            mine = next((d for d in self.downloads.values() if d.model_name == name and d.state not in DONE), None)
        if mine is None and self.records is not None:
            return self.records.unfinished(name)
        return mine

    def start(self, entry: CatalogEntry, in_catalog: bool, options: dict[str, Any] | None = None) -> tuple[Download, bool]:
        """Start fetching ``entry``; returns (download, started). An active download of it is returned as is.

        ``options`` are recorded with the download; the one that acts is ``include_vocoder`` (bool): fetch the
        vocoder too, into the stored model's vocoder/ folder. Where it cannot apply this raises
        VocoderNotApplicable (422, field include_vocoder) before anything starts.
        """
        from kiln.sources import vocoder_source

        options = dict(options or {})
        include_vocoder = options.get("include_vocoder", False)
        if not isinstance(include_vocoder, bool):
            raise InvalidInput("include_vocoder", "must be true or false")
        self.policy.check_source(entry, in_catalog)  # before anything reads the source
        vocoder_source(entry, include_vocoder)  # refuse now, not in a background failure
        existing = self.active(entry.name)
        if existing is not None:
            return existing, False
        size = expected_bytes(entry)
        self.policy.check_size(entry.name, size, self.store.root)
        download = Download(
            id=uuid.uuid4().hex, model_name=entry.name, source=entry.source, model_id=entry.id, task=entry.task,
            via="background", expected_bytes=size, options=options,
        )
        if in_catalog and self.dagster is not None and self.dagster.available():
            download.via = "dagster"
            config = {"include_vocoder": True} if include_vocoder else None  # raw_model's RawModelConfig
            download.dagster_run_id = self.dagster.launch_asset(self.asset, entry.name, config)
            download.dagster_run_url = f"{self.dagster.url}/runs/{download.dagster_run_id}"
            download.started = time.time()
            download.message = f"Dagster run {download.dagster_run_id} launched for {self.asset}[{entry.name}]"
        with self._lock:
            self.downloads[download.id] = download
        self._save(download)
        if download.via == "background":
            self._executor.submit(self._fetch, download, entry)
        log.info("download started", extra={"download_id": download.id, "model_name": entry.name, "via": download.via})
        return download, True

    def _fetch(self, download: Download, entry: CatalogEntry) -> None:
        from kiln.sources import fetch

        download.state, download.started, download.message = "running", time.time(), f"Fetching {entry.source}:{entry.id}"
        self._save(download)
        outcome = replace(download)  # the end state is stored before this process reports it
        try:
            model, reused = fetch(entry, self.store, include_vocoder=download.options.get("include_vocoder", False))
        except Exception as exc:
            outcome.state, outcome.message = "failed", str(exc) if isinstance(exc, KilnError) else f"{type(exc).__name__}: {exc}"
            log.warning("download failed", extra={"download_id": download.id, "error": outcome.message})
        else:
            outcome.state, outcome.reused = "completed", reused
            outcome.path, outcome.version = str(model.path), model.version
            outcome.downloaded_bytes = model.size_bytes
            outcome.expected_bytes = download.expected_bytes or model.size_bytes
            outcome.message = (
                f"{'Already in' if reused else 'Stored in'} the model store as version {model.version}. "
                f"Run `kiln pipeline --model {entry.name}` (or the model_pipeline job in Dagster) to evaluate, "
                "register and serve it."
            )
        finally:
            outcome.finished = time.time()
            self._save(outcome)
            with self._lock:
                download.__dict__.update(outcome.__dict__)

    def _staging_bytes(self, name: str) -> int:
        staging = self.store.root / ".staging"
        if not staging.is_dir():
            return 0
        return sum(directory_size(folder) for folder in staging.glob(f"{name}-*") if folder.is_dir())

    def get(self, download_id: str) -> Download:
        with self._lock:
            download = self.downloads.get(download_id)
        if download is None and self.records is not None:
            download = self.records.load(download_id)  # started before a restart, or by another gateway worker
        if download is None:
            raise NotFound(f"No download with id '{download_id}'", {"download_id": download_id})
        return download

    def status(self, download_id: str) -> dict[str, Any]:
        return self._refresh(self.get(download_id))

    def _refresh(self, download: Download) -> dict[str, Any]:
        """Bring ``download`` up to date (Dagster run state, bytes staged so far) and answer it."""
        before = (download.state, download.message)
        if download.via == "dagster" and download.state not in DONE and self.dagster is not None:
            try:
                status = self.dagster.run_status(download.dagster_run_id or "")
                download.state = DAGSTER_STATES.get(status, download.state)
                download.message = f"Dagster run {download.dagster_run_id}: {status}"
            except Exception as exc:  # Dagster went away: report, keep the last known state
                download.message = f"Could not reach Dagster for run {download.dagster_run_id}: {exc}"
            if download.state in DONE:
                download.finished = time.time()
                latest = self.store.latest(download.model_name)
                if download.state == "completed" and latest is not None:
                    download.path, download.version = str(latest.path), latest.version
                    download.downloaded_bytes = latest.size_bytes
        elif download.state == "running":
            download.downloaded_bytes = self._staging_bytes(download.model_name)
        if download.via == "dagster" and (download.state, download.message) != before:
            self._save(download)
        return download.to_dict()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            downloads = list(self.downloads.values())
        if self.records is not None:  # one query for the stored ones, not one per id
            mine = {d.id for d in downloads}
            downloads += [d for d in self.records.recent() if d.id not in mine]
        return [self._refresh(d) for d in downloads]
