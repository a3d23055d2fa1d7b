"""``kiln serve`` and ``kiln api`` supervise the BentoML server instead of becoming it, so that a stop
ends every process the server started, in bounded time.

BentoML's arbiter starts each service worker in its own session (process group), so a signal to the
server's group never reaches them, and when the arbiter dies abruptly they are left holding ports and
memory. The supervisor:

- passes SIGTERM/SIGINT on to the arbiter, waits up to ``shutdown_timeout`` seconds for it to stop its
  workers (finishing or failing in-flight work), then SIGKILLs whatever of the server is still alive;
- remembers the server's processes as they appear, and ends the ones left behind when the arbiter exits
  for any reason (killed, crashed);
- asks the kernel to SIGTERM the arbiter when the supervisor itself dies (even by SIGKILL), so killing
  ``kiln serve`` still stops the server and, through the arbiter, its workers.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import threading
import time

import psutil

log = logging.getLogger("kiln.supervise")

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the supervisor's own signal handling still applies
        pass


class Supervisor:
    def __init__(self, command: list[str], shutdown_timeout: float, poll_seconds: float = 0.5):
        self.command = command
        self.shutdown_timeout = shutdown_timeout
        self.poll_seconds = poll_seconds
        self.known: dict[int, float] = {}  # pid -> create_time of every process of the server seen so far
        self.stopping = threading.Event()

    def run(self) -> int:
        self.process = subprocess.Popen(self.command, preexec_fn=_die_with_parent)  # noqa: PLW1509 - prctl only
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        try:
            while self.process.poll() is None:
                self._remember()
                if self.stopping.is_set() and time.monotonic() > self.deadline:
                    log.warning("the server did not stop within %.0f s: killing it", self.shutdown_timeout)
                    self._kill_all()
                    break
                time.sleep(self.poll_seconds)
        finally:
            self._kill_all()  # whatever outlived the arbiter
        return self.process.wait()

    def _on_signal(self, signum: int, frame) -> None:
        if not self.stopping.is_set():
            self.deadline = time.monotonic() + self.shutdown_timeout
            self.stopping.set()
            self._remember()
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)

    def _remember(self) -> None:
        try:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                try:
                    self.known.setdefault(child.pid, child.create_time())
                except psutil.Error:
                    continue
        except psutil.Error:
            pass

    def _kill_all(self) -> None:
        for pid, created in list(self.known.items()):
            try:
                process = psutil.Process(pid)
                if process.create_time() == created:  # the same process, not a reused pid
                    process.kill()
            except psutil.Error:
                pass
        if self.process.poll() is None:
            self.process.kill()
        self.known.clear()


def supervise(command: list[str], shutdown_timeout: float) -> int:
    return Supervisor(command, shutdown_timeout).run()
