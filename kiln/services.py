"""Starting and stopping the workspace's servers (``kiln up``): API, Dagster UI, MLflow UI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kiln.integrations.bentoml_serve import gateway_command
from kiln.settings import Settings

BIN = Path(sys.executable).parent


@dataclass
class Server:
    name: str
    command: list[str]
    url: str
    ready_path: str
    process: subprocess.Popen | None = None


def servers(settings: Settings) -> list[Server]:
    host = settings.host
    return [
        Server("api", gateway_command(settings, host, settings.port), f"http://{host}:{settings.port}", "/health"),
        Server(
            "dagster",
            [str(BIN / "dagster"), "dev", "-w", str(settings.workspace / "workspace.yaml"),
             "-h", host, "-p", str(settings.dagster_port)],
            f"http://{host}:{settings.dagster_port}",
            "/server_info",
        ),
        Server(
            "mlflow",
            # `mlflow server` on the shared profile's database (clients track there directly; the server is
            # the UI), else the UI over the embedded sqlite store
            [str(BIN / "mlflow"), "server" if settings.mlflow_backend_store_uri else "ui",
             "--backend-store-uri", settings.mlflow_backend_store_uri or settings.tracking_uri,
             "--default-artifact-root", settings.artifact_root.as_uri(),
             "--host", host, "--port", str(settings.mlflow_port)],
            f"http://{host}:{settings.mlflow_port}",
            "/health",
        ),
    ]


def port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_ready(server: Server, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process and server.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(server.url + server.ready_path, timeout=2) as response:
                if response.status < 500:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def stop(servers_: list[Server]) -> None:
    # Each server leads its own process group (start_new_session), so its children stop with it.
    for server in servers_:
        if server.process and server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for server in servers_:
        if server.process is None:
            continue
        try:
            server.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


def run_workspace(settings: Settings, run_pipeline: bool = True) -> int:
    to_start = servers(settings)
    busy = [s for s in to_start if not port_free(settings.host, int(s.url.rsplit(":", 1)[1]))]
    if busy:
        names = ", ".join(f"{s.name} ({s.url})" for s in busy)
        print(f"Port already in use: {names}. Stop what holds it, or set KILN_PORT / KILN_DAGSTER_PORT / KILN_MLFLOW_PORT.")
        return 1
    if run_pipeline:
        code = subprocess.call([sys.executable, "-m", "pipelines.run"], cwd=settings.workspace)
        if code != 0:
            print("The pipeline failed; not starting the servers. Fix the error above and run `make up` again.")
            return code
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    interrupted = False

    def on_signal(signum, frame):  # noqa: ARG001
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for server in to_start:
            log = (settings.logs_dir / f"{server.name}.log").open("ab")
            server.process = subprocess.Popen(
                server.command, cwd=settings.workspace, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            print(f"starting {server.name:<8} {server.url}  (log: {settings.logs_dir / (server.name + '.log')})", flush=True)
        for server in to_start:
            if not wait_ready(server, timeout=180):
                print(f"{server.name} did not become ready; see {settings.logs_dir / (server.name + '.log')}")
                return 1
        print_banner(settings, to_start)
        while not interrupted:
            for server in to_start:
                if server.process and server.process.poll() is not None:
                    print(f"{server.name} exited with code {server.process.returncode}; stopping the rest.")
                    return 1
            time.sleep(0.5)
        print("\nStopping...", flush=True)
        return 0
    finally:
        stop(to_start)
        print("All servers stopped.", flush=True)


def print_banner(settings: Settings, started: list[Server]) -> None:
    api = started[0].url
    from kiln.access.service import LOCAL_ADMIN_KEY_FILE

    admin = settings.home_dir / LOCAL_ADMIN_KEY_FILE  # written by the API at its first start
    access = (f"Auth is off: every route is open on {settings.host} but the admin ones (keys, users, scaling,\n"
              f"log deletion), which need the local admin key:  -H \"X-API-Key: $(cat {admin})\""
              if not settings.enable_auth else "Auth is on: send an API key (X-API-Key) or a JWT from /auth/login.")
    print(
        f"""
Kiln is up.
  API (BentoML)   {api}   (home page {api}/ , Swagger UI {api}/docs)
  Dagster UI      {started[1].url}
  MLflow UI       {started[2].url}

{access}

Try:
  curl -s -X POST {api}/predict -H 'Content-Type: application/json' \\
       -d '{{"model_name": "example", "inputs": [0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,0,3,15,2,0,11,8,0,0,4,12,0,0,8,8,0,0,5,8,0,0,9,8,0,0,4,11,0,1,12,7,0,0,2,14,5,10,12,0,0,0,0,6,13,10,0,0,0]}}'
  curl -s -X POST {api}/predict -H 'Content-Type: application/json' \\
       -d '{{"model_name": "minilm", "inputs": ["Kiln serves models.", "Models are served by Kiln."]}}'

Press Ctrl-C to stop all three.""",
        flush=True,
    )
