"""Throughput and latency of ``POST /predict`` for minilm, adaptive batching on and off.

Starts a real ``kiln serve`` on a free port (the models must be built: `make pipeline`), sends
single-sentence requests at concurrency 1, 8 and 32, and prints a table. Run by hand:

    .venv/bin/python benchmarks/predict_throughput.py [--requests-per-client 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
LOG = Path(os.environ.get("TMPDIR", "/tmp")) / "kiln-benchmark-server.log"


def sentences() -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "assets/eval/sentence_triplets.jsonl").read_text().splitlines()]
    return [row[key] for row in rows for key in ("anchor", "positive", "negative")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    kiln = Path(sys.executable).parent / "kiln"
    # Models load on their first request; preload minilm so start-up is not part of the measurement.
    env = {**os.environ, "KILN_PRELOAD_MODELS": "minilm"}
    process = subprocess.Popen(
        [str(kiln), "serve", "--port", str(port)],
        stdout=LOG.open("wb"), stderr=subprocess.STDOUT, start_new_session=True, env=env,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if "minilm" in httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["models_loaded"]:
                return process
        except (httpx.HTTPError, ValueError, KeyError):
            time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    raise SystemExit("kiln serve did not become healthy; has `make pipeline` run?")


async def load(url: str, texts: list[str], concurrency: int, total: int, batching: bool) -> dict[str, float]:
    latencies: list[float] = []

    async def client(http: httpx.AsyncClient, counter) -> None:
        for i in counter:
            started = time.perf_counter()
            response = await http.post(
                url, json={"model_name": "minilm", "inputs": texts[i % len(texts)], "enable_batching": batching}
            )
            if response.status_code != 200:
                raise SystemExit(f"/predict answered {response.status_code}: {response.text[:500]}")
            latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        warm_up = iter(range(2 * concurrency))
        await asyncio.gather(*(client(http, warm_up) for _ in range(concurrency)))
        latencies.clear()
        counter = iter(range(total))  # shared: each client takes the next request number
        started = time.perf_counter()
        await asyncio.gather(*(client(http, counter) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "throughput_rps": total / wall,
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests-per-client", type=int, default=12)
    parser.add_argument("--min-requests", type=int, default=96)
    args = parser.parse_args()
    port = free_port()
    server = start_server(port)
    url = f"http://127.0.0.1:{port}/predict"
    texts = sentences()
    rows = []
    try:
        for batching in (True, False):
            for concurrency in (1, 8, 32):
                total = max(args.min_requests, concurrency * args.requests_per_client)
                result = asyncio.run(load(url, texts, concurrency, total, batching))
                rows.append({"batching": batching, "concurrency": concurrency, "requests": total, **result})
                print(f"batching={'on ' if batching else 'off'} c={concurrency:<3} {result}", flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    print("\n| adaptive batching | concurrency | requests | throughput (req/s) | p50 (ms) | p95 (ms) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {'on' if row['batching'] else 'off'} | {row['concurrency']} | {row['requests']} | "
            f"{row['throughput_rps']:.1f} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} |"
        )
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / f"predict_throughput-{int(time.time())}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
