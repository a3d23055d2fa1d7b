"""Real server subprocesses for tests: each leads its own process group (start_new_session), so stopping
it with killpg also stops the workers it forked."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def reachable(port: int, host: str = "127.0.0.1") -> bool:
    """Something listens on ``host:port`` (the loopback PostgreSQL, Redis, RabbitMQ of these machines)."""
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0
KILN = BIN / "kiln"


def start(command: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        command, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        env=env if env is not None else os.environ.copy(), cwd=cwd,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_for(
    url: str, process: subprocess.Popen, log: Path,
    ready: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200, timeout: float = 180,
) -> None:
    """Poll ``url`` until ``ready`` says so; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{url} not ready in {timeout} s: {log.read_text()[-2000:]}"
        try:
            if ready(httpx.get(url, timeout=5)):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)


@contextmanager
def running(
    command: list[str], ready_url: str, log: Path, env: dict | None = None,
    ready: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
) -> Iterator[subprocess.Popen]:
    process = start(command, log, env)
    try:
        wait_for(ready_url, process, log, ready)
        yield process
    finally:
        stop(process)
