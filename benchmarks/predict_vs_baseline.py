"""``POST /predict`` with minilm at concurrency 32: Kiln (adaptive batching) against a plain FastAPI +
sentence-transformers server without batching, and against in-process batched ``encode``, on the same
machine in the same run. Needs the built workspace (`make pipeline`). Run by hand:

    .venv/bin/python benchmarks/predict_vs_baseline.py [--requests 1920] [--concurrency 32]

Both servers get the same lean load generator (loadgen.py) and the same warm-up, long enough for
Kiln's autoscaler to react to the load (it adds instances while the ones it has are busy).
Goals (issue 4): Kiln >= 3x the baseline server's throughput; Kiln >= 60% of in-process batched encode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_throughput import ROOT, free_port, load, minilm_pool, sentences, start_server  # noqa: E402

BASELINE_LOG = Path(os.environ.get("TMPDIR", "/tmp")) / "kiln-benchmark-baseline.log"


def in_process_encode(texts: list[str], total: int, batch_size: int, threads: int, engines: int = 1) -> dict[str, float]:
    """Kiln's own engine, loaded in this process, encoding ``total`` sentences in batches; with
    ``engines`` > 1, that many engines encode on their own Python threads (the served layout)."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from bentos.models import served_models
    from kiln.engines import load_engine
    from kiln.settings import configure_environment

    configure_environment()
    torch.set_num_threads(threads)
    model = served_models()["minilm"]
    loaded = [load_engine(model.task, model.path, "minilm") for _ in range(engines)]
    work = [texts[i % len(texts)] for i in range(total)]
    batches = [work[start : start + batch_size] for start in range(0, total, batch_size)]

    def encode_share(index: int) -> None:
        for batch in batches[index::engines]:
            loaded[index].encode(batch)

    for engine in loaded:
        engine.encode(work[:batch_size])  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(engines) as pool:
        list(pool.map(encode_share, range(engines)))
    wall = time.perf_counter() - started
    return {"throughput_rps": total / wall}


def start_baseline(port: int, torch_threads: int = 0) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "baseline_server.py"), "--port", str(port), "--torch-threads", str(torch_threads)],
        stdout=BASELINE_LOG.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    raise SystemExit(f"the baseline server did not start; see {BASELINE_LOG}")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1920)
    parser.add_argument("--warm-up", type=int, default=960, help="requests sent before measuring, to each server")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32, help="in-process encode batch size")
    args = parser.parse_args()
    texts = sentences()
    rows: dict[str, dict[str, float]] = {}
    load_before = tuple(round(x, 2) for x in os.getloadavg())

    cores = os.cpu_count() or 1
    for threads in sorted({1, cores}):
        rows[f"in-process batched encode (batch {args.batch_size}, {threads} torch thread(s))"] = in_process_encode(texts, args.requests, args.batch_size, threads)
    local = max(r["throughput_rps"] for r in rows.values())
    layout_row = f"in-process, {cores} engines x 1 torch thread on {cores} Python threads (batch {args.batch_size // cores})"
    rows[layout_row] = in_process_encode(texts, args.requests, args.batch_size // cores, 1, engines=cores)
    print("in-process", rows, flush=True)

    port = free_port()
    server = start_server(port)
    try:
        url = f"http://127.0.0.1:{port}/predict"
        asyncio.run(load(url, texts, args.concurrency, args.warm_up, None))
        kiln_row = "kiln /predict (adaptive batching, autoscaled instances x 1 torch thread)"
        rows[kiln_row] = asyncio.run(load(url, texts, args.concurrency, args.requests, None))
        rows[kiln_row]["pool"] = minilm_pool(port)
        print("kiln", rows[kiln_row], flush=True)
    finally:
        stop(server)

    base_row = "FastAPI + sentence-transformers, no batching (torch default threads)"
    for threads, name in ((0, base_row), (1, "FastAPI + sentence-transformers, no batching (1 torch thread)")):
        port = free_port()
        baseline = start_baseline(port, threads)
        try:
            url = f"http://127.0.0.1:{port}/predict"
            asyncio.run(load(url, texts, args.concurrency, args.warm_up, None))
            rows[name] = asyncio.run(load(url, texts, args.concurrency, args.requests, None))
            print(name, rows[name], flush=True)
        finally:
            stop(baseline)

    kiln = rows[kiln_row]["throughput_rps"]
    base = rows[base_row]["throughput_rps"]
    best_base = max(rows[base_row]["throughput_rps"], rows["FastAPI + sentence-transformers, no batching (1 torch thread)"]["throughput_rps"])
    print(f"\nminilm, one sentence per request, concurrency {args.concurrency}, {args.requests} requests, {cores} cores, load average before {load_before}\n")
    print("| setup | throughput (sentences/s) | p50 (ms) | p95 (ms) | load generator CPU (ms/request) |")
    print("| --- | --- | --- | --- | --- |")
    for name, row in rows.items():
        cells = [f"{row[key]:.{digits}f}" if key in row else "-" for key, digits in (("p50_ms", 0), ("p95_ms", 0), ("load_cpu_ms_per_request", 2))]
        print(f"| {name} | {row['throughput_rps']:.1f} | {' | '.join(cells)} |")
    print(f"\nKiln / baseline server (default threads): {kiln / base:.2f}x (goal >= 3x)")
    print(f"Kiln / best baseline server: {kiln / best_base:.2f}x")
    print(f"Kiln / best in-process batched encode: {100 * kiln / local:.0f}% (goal >= 60%)")
    print(f"Kiln / in-process served layout ({cores} engines on threads): {100 * kiln / rows[layout_row]['throughput_rps']:.0f}%")
    print(f"Kiln's minilm pool after the run: {rows[kiln_row]['pool']}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    summary = {"rows": rows, "speedup_vs_baseline": kiln / base, "share_of_in_process": kiln / local, "args": vars(args), "load_average_before": load_before, "load_average_after": os.getloadavg()}
    (out / f"predict_vs_baseline-{int(time.time())}.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
