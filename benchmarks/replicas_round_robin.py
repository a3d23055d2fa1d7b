"""Two `kiln serve` replicas on the shared profile behind nginx round-robin, against one replica behind
the same nginx: `/predict` (minilm, one sentence) and `POST /tasks` (task creation, no workers), in one run.

Needs the loopback PostgreSQL and Redis, `nginx` and `wrk` (apt), and a built workspace (`make pipeline`:
the replicas serve the champions of `KILN_HOME`'s BentoML store through the shared folder). Run by hand:

    .venv/bin/python benchmarks/replicas_round_robin.py [--seconds 20] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
KILN = Path(sys.executable).parent / "kiln"
PREDICT_BODY = '{"model_name": "minilm", "inputs": "Two replicas answer as one service."}'
TASK_BODY = '{"title": "bench", "task_type": "wait", "parameters": {"seconds": 0}}'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def shared_env(work: Path, kiln_home: Path) -> tuple[dict, str, int]:
    """A fresh records database and Redis database; the shared folder holds the home's served models."""
    name = f"kiln_bench_{uuid.uuid4().hex[:8]}"
    shared = work / "shared"
    shared.mkdir()
    (shared / "bentoml").symlink_to(kiln_home / "bentoml")
    db = 1 + uuid.uuid4().int % 14
    env = {**os.environ, "KILN_DATABASE_URL": f"postgresql+psycopg://127.0.0.1:5432/{name}",
           "KILN_REDIS_URL": f"redis://127.0.0.1:6379/{db}", "KILN_TASK_QUEUE": "redis",
           "KILN_SHARED_DIR": str(shared), "KILN_TASK_WORKERS": "0", "KILN_PRELOAD_MODELS": "minilm"}
    subprocess.run([str(KILN), "doctor", "--migrate"], env={**env, "KILN_HOME": str(work / "doctor")},
                   check=False, capture_output=True, timeout=300)
    return env, name, db


def start_replica(env: dict, work: Path, label: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    home = work / label
    home.mkdir()
    process = subprocess.Popen([str(KILN), "serve", "--port", str(port)], env={**env, "KILN_HOME": str(home)},
                               stdout=(home / "serve.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if "minilm" in httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json().get("models_loaded", []):
                return process, port
        except (httpx.HTTPError, ValueError):
            pass
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise SystemExit(f"replica {label} did not come up: {(home / 'serve.log').read_text()[-2000:]}")


def start_nginx(work: Path, upstreams: dict[str, list[int]]) -> tuple[subprocess.Popen, dict[str, int]]:
    """One nginx, one listening port per upstream group (round-robin, keep-alive to the replicas)."""
    ports = {name: free_port() for name in upstreams}
    blocks = []
    for name, members in upstreams.items():
        servers = "".join(f"server 127.0.0.1:{port};" for port in members)
        blocks.append(f"upstream {name} {{ {servers} keepalive 64; }}\n"
                      f"server {{ listen 127.0.0.1:{ports[name]}; access_log off;"
                      f" location / {{ proxy_pass http://{name}; proxy_http_version 1.1;"
                      f" proxy_set_header Connection \"\"; proxy_set_header Host localhost; }} }}\n")
    conf = work / "nginx.conf"
    conf.write_text(f"worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/nginx.err warn;\n"
                    f"events {{ worker_connections 1024; }}\n"
                    f"http {{ client_body_temp_path {work}/nginx-body; proxy_temp_path {work}/nginx-proxy;\n"
                    + "".join(blocks) + "}\n")
    process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)], start_new_session=True)
    time.sleep(1)
    return process, ports


def wrk(url: str, body: str, seconds: int, connections: int) -> dict[str, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(f'wrk.method = "POST"\nwrk.body = {body!r}\nwrk.headers["Content-Type"] = "application/json"\n'
                      "done = function(summary, latency, requests)\n"
                      "  io.write(string.format('P50 %d\\nP99 %d\\n', latency:percentile(50), latency:percentile(99)))\n"
                      "end\n")
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    script.unlink()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": int(re.search(r"P50 (\d+)", out).group(1)) / 1000,
            "p99_ms": int(re.search(r"P99 (\d+)", out).group(1)) / 1000,
            "non_2xx": int(errors.group(1)) if errors else 0}


def report_failures(work: Path, rows: list[dict]) -> None:
    """Where a run had non-2xx answers: what the replicas logged for them, and nginx's own errors."""
    if not any(r["non_2xx"] for r in rows):
        return
    import json

    for log in sorted(work.glob("replica-*/logs/*.log")):
        for line in log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record.get("status"), int) and record["status"] >= 300 or record.get("level") == "ERROR":
                print(f"{log.parent.parent.name}: {line[:400]}")
    errors = work / "nginx.err"
    if errors.exists() and errors.read_text().strip():
        print("nginx:", errors.read_text()[-2000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="alternating one/two rounds, in one run")
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install -y {tool}")
    from kiln.settings import get_settings

    kiln_home = get_settings().home_dir
    if not (kiln_home / "bentoml" / "models").is_dir():
        raise SystemExit(f"no served models in {kiln_home}: run `make pipeline` first")
    work = Path(tempfile.mkdtemp(prefix="kiln-replicas-"))
    env, database, redis_db = shared_env(work, kiln_home)
    processes = []
    try:
        a, port_a = start_replica(env, work, "replica-a")
        processes.append(a)
        b, port_b = start_replica(env, work, "replica-b")
        processes.append(b)
        proxy, ports = start_nginx(work, {"one": [port_a], "two": [port_a, port_b]})
        processes.append(proxy)
        print(f"load before: {os.getloadavg()}  cores: {os.cpu_count()}", flush=True)
        rows = []
        for round_index in range(args.rounds):
            for route, body in (("/predict", PREDICT_BODY), ("/tasks", TASK_BODY)):
                for group in ("one", "two"):
                    figures = wrk(f"http://127.0.0.1:{ports[group]}{route}", body, args.seconds, args.connections)
                    rows.append({"round": round_index + 1, "route": route, "replicas": group, **figures})
                    print(rows[-1], flush=True)
        print(f"load after: {os.getloadavg()}")
        print("\n| round | route | replicas | req/s | p50 ms | p99 ms | non-2xx |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            print(f"| {r['round']} | {r['route']} | {r['replicas']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | "
                  f"{r['p99_ms']:.1f} | {r['non_2xx']} |")
        report_failures(work, rows)
        for route in ("/predict", "/tasks"):
            one = sum(r["rps"] for r in rows if r["route"] == route and r["replicas"] == "one")
            two = sum(r["rps"] for r in rows if r["route"] == route and r["replicas"] == "two")
            print(f"{route}: two replicas / one = {two / one:.2f}")
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        import psycopg
        import redis

        redis.Redis.from_url(f"redis://127.0.0.1:6379/{redis_db}").flushdb()
        with psycopg.connect("postgresql://127.0.0.1:5432/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
