"""``POST /predict`` with minilm, one sentence per request: Kiln serving each variant (eager fp32, ONNX fp32,
ONNX int8) against a plain FastAPI + sentence-transformers server and against in-process batched encode of
the same variant, at concurrency 1, 8 and 32, in one run. Load comes from ``wrk`` (keep-alive, a Lua script
cycling through the sentences), which costs the shared CPU almost nothing. Also: whether the served
embeddings match the in-process variant's, and cold start (process start until ``/readyz`` is 200).

Needs the built workspace (`make pipeline`, or ``KILN_HOME`` pointing at one) and wrk
(`apt-get install -y wrk`). Run by hand:

    .venv/bin/python benchmarks/predict_vs_baseline.py [--seconds 10] [--variants eager,onnx-fp32,onnx-int8]

Goals (issue 19) at concurrency 32: >= 6x the plain server's throughput with p95 < 300 ms, and >= 75% of
in-process batched encode of the same variant; at concurrency 1, p50 no worse than the plain server's;
cold start < 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_throughput import ROOT, free_port, sentences  # noqa: E402

LOGS = Path(os.environ.get("TMPDIR", "/tmp"))
VARIANT_NAMES = {"eager": "eager-fp32", "onnx-fp32": "onnx-fp32", "onnx-int8": "onnx-int8"}
WRK_SCRIPT = """
local bodies = {}
local index = 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
function request()
  index = index % #bodies + 1
  return wrk.format("POST", "/predict", {["Content-Type"] = "application/json"}, bodies[index])
end
function done(summary, latency, requests)
  io.write(string.format("KILN_WRK {\\"requests\\": %d, \\"seconds\\": %f, \\"non_2xx\\": %d, \\"socket_errors\\": %d, "
    .. "\\"p50_ms\\": %f, \\"p95_ms\\": %f, \\"p99_ms\\": %f}\\n",
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


def wrk(url: str, bodies_file: Path, script: Path, concurrency: int, seconds: float) -> dict[str, float]:
    threads = min(2, concurrency)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds}s", "--timeout", "30s",
         "-s", str(script), url, "--", str(bodies_file)],
        capture_output=True, text=True, timeout=seconds + 60,
    )
    match = re.search(r"KILN_WRK (\{.*\})", out.stdout)
    if not match:
        raise SystemExit(f"wrk failed: {out.stdout[-800:]} {out.stderr[-800:]}")
    row = json.loads(match.group(1))
    row["throughput_rps"] = row["requests"] / row["seconds"]
    if row["non_2xx"] or row["socket_errors"]:
        print(f"  WARNING: {row['non_2xx']} non-2xx answers, {row['socket_errors']} socket errors", flush=True)
    return row


def start(command: list[str], log: Path, env: dict, ready_url: str, timeout: float = 240) -> tuple[subprocess.Popen, float]:
    """Start a server; (process, seconds until ``ready_url`` answered 200)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True, env=env)
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise SystemExit(f"{command[0]} exited; see {log}")
        try:
            if httpx.get(ready_url, timeout=2).status_code == 200:
                return process, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop(process)
    raise SystemExit(f"{ready_url} not ready in {timeout} s; see {log}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def kiln_env(variant: str | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if variant is not None:
        env["KILN_SERVE_VARIANT"] = variant
        env["KILN_PRELOAD_MODELS"] = "minilm"
    return env


def in_process_engine(variant: str, threads: int):
    """The served variant of minilm, loaded in this process the way the worker loads it."""
    import torch

    from bentos.models import served_models
    from kiln.engines import load_engine
    from kiln.serving.variants import load_variant

    torch.set_num_threads(threads)
    model = served_models()["minilm"]
    engine = load_variant("minilm", model.task, model.path, VARIANT_NAMES[variant],
                          lambda: load_engine(model.task, model.path, "minilm"), threads)
    if engine.variant != VARIANT_NAMES[variant]:
        raise SystemExit(f"minilm has no loadable {variant} variant: {engine.describe().get('variant_fallback')}")
    return engine


def in_process_batched(engine, texts: list[str], total: int, batch_size: int) -> float:
    work = [texts[i % len(texts)] for i in range(total)]
    engine.predict(work[:batch_size])  # warm-up
    started = time.perf_counter()
    for start_at in range(0, total, batch_size):
        engine.predict(work[start_at : start_at + batch_size])
    return total / (time.perf_counter() - started)


def embeddings_match(port: int, engine, texts: list[str]) -> dict[str, float]:
    """Served (one request per sentence) against the in-process variant (one batch)."""
    import numpy as np

    served, variants = [], set()
    for text in texts:
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"model_name": "minilm", "inputs": text}, timeout=60)
        answer.raise_for_status()
        served.append(answer.json()["result"]["embedding"])
        variants.add(answer.headers.get("x-model-variant"))
    local = np.asarray([r["embedding"] for r in engine.predict(texts)])
    cosine = (np.asarray(served) * local).sum(1)  # both normalized
    return {"min_cosine": float(cosine.min()), "max_abs_diff": float(np.abs(np.asarray(served) - local).max()),
            "served_variant": ",".join(sorted(str(v) for v in variants))}


def measure_server(name: str, port: int, bodies: Path, script: Path, args) -> dict[str, dict]:
    url = f"http://127.0.0.1:{port}"
    wrk(url, bodies, script, 32, args.warm_up)  # warm-up, long enough for the autoscaler to add instances
    rows = {}
    for concurrency in (1, 8, 32):
        rows[concurrency] = wrk(url, bodies, script, concurrency, args.seconds)
        print(f"  {name} c={concurrency}: {rows[concurrency]}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="wrk duration per concurrency")
    parser.add_argument("--warm-up", type=float, default=8, help="wrk seconds at c=32 before measuring each server")
    parser.add_argument("--variants", default="eager,onnx-fp32,onnx-int8")
    parser.add_argument("--batch-size", type=int, default=32, help="in-process encode batch size")
    parser.add_argument("--in-process-items", type=int, default=640)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    from kiln.settings import configure_environment

    configure_environment()
    texts = sentences()
    scratch = Path(tempfile.mkdtemp(prefix="kiln-bench-"))
    bodies, script = scratch / "bodies.jsonl", scratch / "predict.lua"
    bodies.write_text("".join(json.dumps({"model_name": "minilm", "inputs": t}) + "\n" for t in texts))
    script.write_text(WRK_SCRIPT)
    cores = os.cpu_count() or 1
    load_before = tuple(round(x, 2) for x in os.getloadavg())
    kiln = [str(Path(sys.executable).parent / "kiln"), "serve", "--host", "127.0.0.1"]
    results: dict = {"load_average_before": load_before, "cores": cores, "args": vars(args), "variants": {}}

    # Cold start: the default configuration, no preload (models load on first use).
    port = free_port()
    process, cold = start([*kiln, "--port", str(port)], LOGS / "kiln-bench-cold.log", kiln_env(None), f"http://127.0.0.1:{port}/readyz")
    stop(process)
    results["cold_start_s"] = round(cold, 2)
    print(f"cold start (process start -> /readyz 200): {cold:.1f} s", flush=True)

    for variant in args.variants.split(","):
        # The best of 1 thread and one per core: on a shared CPU, multi-thread OpenMP passes can stall badly.
        local = 0.0
        for threads in sorted({1, cores}):
            engine = in_process_engine(variant, threads)
            local = max(local, in_process_batched(engine, texts, args.in_process_items, args.batch_size))
        port = free_port()
        process, ready = start([*kiln, "--port", str(port)], LOGS / f"kiln-bench-{variant}.log", kiln_env(variant),
                               f"http://127.0.0.1:{port}/readyz")
        try:
            match = embeddings_match(port, engine, texts[:32])
            rows = measure_server(f"kiln {variant}", port, bodies, script, args)
        finally:
            stop(process)
        results["variants"][variant] = {"in_process_batched_rps": local, "match": match, "ready_s": ready, "wrk": rows}
        print(f"  in-process batched {variant}: {local:.1f} sentences/s; match {match}", flush=True)
        del engine

    port = free_port()
    process, _ = start([sys.executable, str(ROOT / "benchmarks" / "baseline_server.py"), "--port", str(port)],
                       LOGS / "kiln-bench-baseline.log", dict(os.environ), f"http://127.0.0.1:{port}/health")
    try:
        results["baseline"] = measure_server("baseline", port, bodies, script, args)
    finally:
        stop(process)
    results["load_average_after"] = tuple(round(x, 2) for x in os.getloadavg())
    report(results)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / f"predict_vs_baseline-{int(time.time())}.json").write_text(json.dumps(results, indent=2, default=str))
    shutil.rmtree(scratch, ignore_errors=True)


def report(results: dict) -> None:
    base = results["baseline"]
    print(f"\nminilm, one sentence per request, wrk, {results['cores']} cores, load average before "
          f"{results['load_average_before']}, after {results['load_average_after']}; cold start {results['cold_start_s']} s\n")
    print("| server | c | req/s | p50 ms | p95 ms | p99 ms | vs plain server | vs in-process batched |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for concurrency in (1, 8, 32):
        b = base[concurrency]
        print(f"| plain FastAPI + sentence-transformers | {concurrency} | {b['throughput_rps']:.1f} | {b['p50_ms']:.1f} | "
              f"{b['p95_ms']:.1f} | {b['p99_ms']:.1f} | 1.00x | |")
        for variant, data in results["variants"].items():
            row = data["wrk"][concurrency]
            print(f"| kiln {variant} | {concurrency} | {row['throughput_rps']:.1f} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | "
                  f"{row['p99_ms']:.1f} | {row['throughput_rps'] / b['throughput_rps']:.2f}x | "
                  f"{100 * row['throughput_rps'] / data['in_process_batched_rps']:.0f}% |")
    print("\n| variant | in-process batched (sentences/s) | served vs in-process min cosine | max abs diff | header |")
    print("| --- | --- | --- | --- | --- |")
    for variant, data in results["variants"].items():
        m = data["match"]
        print(f"| {variant} | {data['in_process_batched_rps']:.1f} | {m['min_cosine']:.6f} | {m['max_abs_diff']:.2e} | {m['served_variant']} |")
    print("\nGoals at c=32: >= 6x plain, p95 < 300 ms, >= 75% of in-process; c=1 p50 <= plain's; cold start < 10 s")
    for variant, data in results["variants"].items():
        row, one = data["wrk"][32], data["wrk"][1]
        print(f"  {variant}: {row['throughput_rps'] / base[32]['throughput_rps']:.2f}x, p95 {row['p95_ms']:.0f} ms, "
              f"{100 * row['throughput_rps'] / data['in_process_batched_rps']:.0f}% of in-process; "
              f"c=1 p50 {one['p50_ms']:.1f} vs {base[1]['p50_ms']:.1f} ms")


if __name__ == "__main__":
    main()
