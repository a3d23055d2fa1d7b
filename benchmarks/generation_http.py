"""Image generation over HTTP, end to end: ``POST /api/text-to-image/generate`` for the digits model, polling
``/api/text-to-image/status/{task_id}`` and downloading each PNG, N requests at once against one at a time.
This is the path a user's requests take (task records, the batched lane, the model's batcher, the files store);
``generation_throughput.py`` measures the batcher alone.

    KILN_HOME=<home with digits-diffusion> .venv/bin/python benchmarks/generation_http.py [--requests 32] [--url URL]

Without ``--url`` it starts ``kiln serve`` on the home and stops it after. Goal (issue 13): >= 5 images/s with 32
requests at once (16x16, 25 steps, guidance 2: the model's defaults). Each request polls its status every
``--poll`` seconds (0.25): 32 clients polling faster take the gateway's CPU from the sampler.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_throughput import free_port  # noqa: E402
from predict_vs_baseline import LOGS, kiln_env, start, stop  # noqa: E402


def generate(client: httpx.Client, digit: int, seed: int, poll: float = 0.25) -> float:
    """One image: post, poll until done, download the PNG; seconds taken."""
    started = time.perf_counter()
    answer = client.post("/api/text-to-image/generate", json={"prompt": f"a handwritten {digit}", "seed": seed,
                                                              "model_id": "digits-diffusion"})
    answer.raise_for_status()
    task_id = answer.json()["task_id"]
    while True:
        status = client.get(f"/api/text-to-image/status/{task_id}").json()
        if status["status"] == "completed":
            break
        if status["status"] in ("failed", "cancelled"):
            raise SystemExit(f"task {task_id}: {status}")
        time.sleep(poll)
    png = client.get(status["image_url"])
    png.raise_for_status()
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    return time.perf_counter() - started


def run(url: str, requests: int, poll: float) -> None:
    with httpx.Client(base_url=url, timeout=300) as client:
        generate(client, 1, 0)  # warm-up: loads the model
        started = time.perf_counter()
        singles = [generate(client, i % 10, i, poll) for i in range(min(requests, 8))]
        one_at_a_time = len(singles) / (time.perf_counter() - started)
    latencies: list[float] = []

    def worker(index: int) -> None:
        with httpx.Client(base_url=url, timeout=300) as client:
            latencies.append(generate(client, index % 10, 100 + index, poll))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(requests)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    print(f"one at a time: {one_at_a_time:.2f} images/s (median {sorted(singles)[len(singles) // 2]:.2f} s each)")
    print(f"{requests} at once:   {requests / wall:.2f} images/s ({wall:.1f} s for all; each took "
          f"{min(latencies):.1f}-{max(latencies):.1f} s), {requests / wall / one_at_a_time:.1f}x; goal >= 5 images/s")
    print(f"load average {tuple(round(x, 2) for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--url", help="a running Kiln server (default: start kiln serve on KILN_HOME)")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between two status reads of one request")
    args = parser.parse_args()
    if args.url:
        run(args.url.rstrip("/"), args.requests, args.poll)
        return
    port = free_port()
    command = [str(Path(sys.executable).parent / "kiln"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    process, _ = start(command, LOGS / "kiln-bench-generation.log", kiln_env(None), f"http://127.0.0.1:{port}/readyz")
    try:
        run(f"http://127.0.0.1:{port}", args.requests, args.poll)
    finally:
        stop(process)


if __name__ == "__main__":
    main()
