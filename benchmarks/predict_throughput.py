"""Throughput and latency of ``POST /predict`` for minilm, adaptive batching on and off.

Starts a real ``kiln serve`` on a free port (the models must be built: `make pipeline`), sends
single-sentence requests at concurrency 1, 8 and 32 (the lean client in loadgen.py), and prints a
table with the autoscaler's instance count. Run by hand:

    .venv/bin/python benchmarks/predict_throughput.py [--requests-per-client 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import run_load  # noqa: E402

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


def predict_bodies(texts: list[str], batching: bool | None = None) -> list[dict]:
    """One /predict body per sentence (minilm, one sentence per request)."""
    extra = {} if batching is None else {"enable_batching": batching}
    return [{"model_name": "minilm", "inputs": text, **extra} for text in texts]


def check_embedding(answer: dict) -> None:
    if len(answer["result"]["embedding"]) != 384:
        raise SystemExit(f"/predict answered without a 384-dimension embedding: {str(answer)[:300]}")


async def load(url: str, texts: list[str], concurrency: int, total: int, batching: bool | None) -> dict[str, float]:
    return await run_load(url, predict_bodies(texts, batching), concurrency, total, check_embedding)


def minilm_pool(port: int) -> dict:
    """The server's autoscaler view of minilm (instances, scale-ups), to print beside the figures."""
    pool = httpx.get(f"http://127.0.0.1:{port}/autoscaler/stats", timeout=30).json()["models"]["minilm"]
    return {key: pool.get(key) for key in ("instances", "scale_ups", "scale_downs", "autoscale_max_instances")}


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
                pool = minilm_pool(port)
                rows.append({"batching": batching, "concurrency": concurrency, "requests": total, **result, "pool": pool})
                print(f"batching={'on ' if batching else 'off'} c={concurrency:<3} {result} {pool}", flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    print("\n| adaptive batching | concurrency | requests | throughput (req/s) | p50 (ms) | p95 (ms) | minilm instances |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {'on' if row['batching'] else 'off'} | {row['concurrency']} | {row['requests']} | "
            f"{row['throughput_rps']:.1f} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['pool']['instances']} |"
        )
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / f"predict_throughput-{int(time.time())}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
