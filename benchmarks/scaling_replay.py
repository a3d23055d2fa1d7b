"""Replay a day-long trace, compressed in time, against `kiln serve`: reactive autoscaling against
``KILN_PREDICTIVE_SCALING=apply``, in one run.

The trace is a day compressed into ``--cycle`` seconds (default 360), one step per ``--step`` seconds (5):
night at zero (long enough for the idle TTL to unload the model), a morning ramp from zero to the peak, a
midday dip, an afternoon ramp back to the peak, an evening decline; each cycle gets its own noise. The
server samples its traffic every step (``KILN_TRAFFIC_SAMPLE_SECONDS``), the predictor's time-of-day
features follow the compressed cycle (``KILN_TRAFFIC_CYCLE_SECONDS``) and it forecasts ``--horizon``
seconds ahead.

1. reactive: `kiln serve` with predictive scaling off replays ``--train-cycles`` cycles, recording its
   traffic; the last cycle is the reactive measurement. Then POST /ml/model/retrain trains the scaling
   predictor on that history (a task running the Dagster job, champion-gated as always).
2. apply: the same home, restarted with ``KILN_PREDICTIVE_SCALING=apply``, replays one more cycle after
   a warm-up.

Per mode: p95 latency over the ramps' steps and over the cycle, instance-minutes, cold starts (a request
that found the model unloaded) and pre-warms (an unloaded model loaded on a prediction). Load comes from
wrk (apt install wrk), paced per step by a Lua delay so the request rate follows the trace.

Needs a built home (``KILN_HOME=... kiln pipeline -m minilm``, or ``make pipeline``). Run by hand:

    .venv/bin/python benchmarks/scaling_replay.py --home .kiln [--cycle 360 --step 5 --train-cycles 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

KILN = Path(sys.executable).parent / "kiln"
SENTENCES = [f"Sentence {i} of a replayed day, long enough to take the model a moment." for i in range(16)]
PACE = """
local rate = tonumber(os.getenv("REPLAY_RATE"))
local connections = tonumber(os.getenv("REPLAY_CONNECTIONS"))
wrk.method = "POST"
wrk.body = os.getenv("REPLAY_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("REPLAY_KEY")
function delay() return math.floor(1000 * connections / rate) end
function done(summary, latency, requests)
  local q = {}
  for p = 1, 100 do q[p] = latency:percentile(p) / 1000.0 end
  io.write(string.format("REPLAY {\\"requests\\": %d, \\"non2xx\\": %d, \\"seconds\\": %f, \\"percentiles_ms\\": [%s]}\\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,
    summary.duration / 1e6, table.concat(q, ",")))
end
"""


def trace(phase: float, peak: float) -> float:
    """Requests/s at ``phase`` (0..1) of the compressed day."""
    points = [(0.0, 0.0), (0.2, 0.0), (0.25, 1.0), (0.45, 0.9), (0.5, 0.35), (0.55, 0.35), (0.6, 1.0),
              (0.8, 0.9), (0.9, 0.1), (0.92, 0.0), (1.0, 0.0)]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= phase <= x1:
            return peak * (y0 + (y1 - y0) * (phase - x0) / (x1 - x0))
    return 0.0


def is_ramp(phase: float) -> bool:
    """The ramps and the steps right after them, while capacity may lag the rise."""
    return 0.19 <= phase < 0.32 or 0.54 <= phase < 0.67


def start_server(home: Path, env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    port = 18500 + os.getpid() % 1000
    process = subprocess.Popen([str(KILN), "serve", "--host", "127.0.0.1", "--port", str(port)],
                               env={**env, "KILN_HOME": str(home)}, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).json().get("status") == "healthy":
                return process, url
        except (httpx.HTTPError, ValueError):
            pass
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise SystemExit(f"kiln serve did not come up: {log.read_text()[-2000:]}")


def stop_server(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


class InstancePoller(threading.Thread):
    """The model's instance count once a second (1 request/s: no load to speak of)."""

    def __init__(self, url: str, headers: dict, model: str):
        super().__init__(daemon=True)
        self.url, self.headers, self.model = url, headers, model
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=10) as http:
            while not self.stopped.wait(1.0):
                try:
                    pool = http.get("/autoscaler/stats").json()["models"].get(self.model, {})
                    self.samples.append((time.time(), int(pool.get("instances", 0))))
                except (httpx.HTTPError, ValueError, KeyError):
                    continue

    def instance_minutes(self, start: float, end: float) -> float:
        window = [(t, n) for t, n in self.samples if start <= t < end]
        return sum(n for _, n in window) / 60.0 * ((end - start) / max(1, len(window)))


def wrk_step(url: str, key: str, body: str, rate: float, connections: int, seconds: int, script: Path) -> dict:
    env = {**os.environ, "REPLAY_RATE": f"{rate:.3f}", "REPLAY_CONNECTIONS": str(connections),
           "REPLAY_BODY": body, "REPLAY_KEY": key}
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script),
                          f"{url}/predict/batch"], env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("REPLAY ")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {out.stdout[-1000:]} {out.stderr[-1000:]}")
    return json.loads(line[len("REPLAY "):])


def replay(url: str, key: str, model: str, args, script: Path, until: float, seed: int) -> list[dict]:
    """Steps from now until ``until`` (wall clock), each at the trace's rate for its phase."""
    body = json.dumps({"model_name": model, "inputs": SENTENCES})
    rng = np.random.default_rng(seed)
    steps = []
    while (now := time.time()) < until - 1:
        boundary = math.ceil(now / args.step) * args.step
        time.sleep(max(0.0, boundary - time.time()))
        phase = (boundary % args.cycle) / args.cycle
        rate = trace(phase, args.peak) * max(0.0, 1 + rng.normal(0, 0.1))
        step = {"start": boundary, "phase": round(phase, 4), "rate": round(rate, 3), "ramp": is_ramp(phase)}
        if rate >= 0.2:
            connections = max(1, min(args.connections, math.ceil(rate)))
            step.update(wrk_step(url, key, body, rate, connections, args.step - 1, script))
        steps.append(step)
    return steps


def p95(steps: list[dict]) -> float | None:
    """The 95th percentile over the pooled requests of ``steps`` (each step's percentiles weighted by its requests)."""
    values, weights = [], []
    for step in steps:
        if step.get("requests"):
            values += step["percentiles_ms"]
            weights += [step["requests"] / 100.0] * 100
    if not values:
        return None
    order = np.argsort(values)
    cumulative = np.cumsum(np.array(weights)[order])
    return float(np.array(values)[order][np.searchsorted(cumulative, 0.95 * cumulative[-1])])


def scaling_events(url: str, headers: dict, model: str, start: float, end: float) -> dict:
    history = httpx.get(f"{url}/ml/scaling/history", params={"hours": 1}, headers=headers, timeout=30).json()["history"]
    from datetime import datetime

    def when(entry):
        return datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()

    ours = [e for e in history if e["service"] == model and start <= when(e) < end and e.get("applied", True)]
    from_zero = [e for e in ours if e["action"] == "scale_up" and e["from_replicas"] == 0]
    return {"cold_starts": sum(e["trigger"] == "demand" for e in from_zero),
            "prewarms": sum(e["trigger"] == "ml_prediction" for e in from_zero),
            "predicted_growths": sum(e["trigger"] == "ml_prediction" for e in ours),
            "load_growths": sum(e["trigger"] == "load" for e in ours)}


def measure(label: str, url: str, headers: dict, poller: InstancePoller, steps: list[dict], start: float, end: float,
            model: str) -> dict:
    cycle = [s for s in steps if start <= s["start"] < end]
    ramps = [s for s in cycle if s["ramp"]]
    answered = sum(s.get("requests", 0) for s in cycle)
    return {"mode": label, "ramp_p95_ms": p95(ramps), "cycle_p95_ms": p95(cycle), "requests": answered,
            "non_2xx": sum(s.get("non2xx", 0) for s in cycle),
            "instance_minutes": round(poller.instance_minutes(start, end), 2),
            **scaling_events(url, headers, model, start, end)}


def retrain(url: str, headers: dict) -> dict:
    started = httpx.post(f"{url}/ml/model/retrain", json={"training_hours": 1, "force_retrain": True},
                         headers=headers, timeout=60).json()
    deadline = time.monotonic() + 900
    while True:
        task = httpx.get(f"{url}/tasks/{started['job_id']}", headers=headers, timeout=30).json()
        if task["status"] in ("completed", "failed", "cancelled"):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"retraining did not finish in 15 min: {task}")
        time.sleep(2)
    predictions = httpx.get(f"{url}/ml/scaling/predictions", headers=headers, timeout=30).json()
    return {"task": task["status"], "error": task.get("error"), "model_version": predictions["model_version"],
            "model_accuracy": predictions["model_accuracy"]}


def next_cycle_start(cycle: float, after: float) -> float:
    return math.ceil(after / cycle) * cycle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path(".kiln"), help="a built KILN_HOME (copied, never changed)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--cycle", type=int, default=360, help="seconds of one compressed day")
    parser.add_argument("--step", type=int, default=5, help="seconds per trace step (and per traffic sample)")
    parser.add_argument("--horizon", type=float, default=15.0, help="seconds the predictor forecasts ahead")
    parser.add_argument("--train-cycles", type=int, default=2, help="reactive cycles recorded (the last is measured)")
    parser.add_argument("--peak", type=float, default=0.0, help="peak requests/s (default: 60%% of one warm instance's, measured)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--ttl", type=int, default=20, help="KILN_IDLE_TTL_SECONDS: shorter than the night")
    parser.add_argument("--out", type=Path, default=None, help="write the steps and results as JSON")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kiln-replay-"))
    home = work / "home"
    subprocess.run(["cp", "-a", str(args.home.resolve()), str(home)], check=True)
    script = work / "pace.lua"
    script.write_text(PACE)
    env = {**os.environ, "KILN_IDLE_TTL_SECONDS": str(args.ttl), "KILN_SCALE_DOWN_IDLE_SECONDS": "10",
           "KILN_AUTOSCALER_INTERVAL_SECONDS": "1", "KILN_TRAFFIC_SAMPLE_SECONDS": str(args.step),
           "KILN_TRAFFIC_CYCLE_SECONDS": str(args.cycle), "KILN_SCALING_HORIZON_MINUTES": str(args.horizon / 60),
           "KILN_SCALING_MIN_HISTORY_SAMPLES": "60", "KILN_PRELOAD_MODELS": ""}
    log = work / "serve.log"
    results, all_steps = {}, {}

    process, url = start_server(home, {**env, "KILN_PREDICTIVE_SCALING": "off"}, log)
    key = (home / "admin.key").read_text().strip()  # written by the first start
    headers = {"X-API-Key": key}
    try:
        if not args.peak:
            body = json.dumps({"model_name": args.model, "inputs": SENTENCES})
            wrk_step(url, key, body, 1000.0, 2, 5, script)  # load the model and warm it
            warm = wrk_step(url, key, body, 1000.0, args.connections, 10, script)
            args.peak = round(0.6 * warm["requests"] / warm["seconds"], 2)
            print(f"one warm instance: {warm['requests'] / warm['seconds']:.1f} req/s of {len(SENTENCES)} sentences; "
                  f"peak of the trace {args.peak} req/s", flush=True)
        poller = InstancePoller(url, headers, args.model)
        poller.start()
        first = next_cycle_start(args.cycle, time.time() + 5)
        end = first + args.train_cycles * args.cycle
        print(f"reactive: {args.train_cycles} cycles of {args.cycle} s", flush=True)
        steps = replay(url, key, args.model, args, script, end, seed=1)
        poller.stopped.set()
        all_steps["reactive"] = steps
        results["reactive"] = measure("reactive", url, headers, poller, steps, end - args.cycle, end, args.model)
        print(json.dumps(results["reactive"]), flush=True)
        results["retrain"] = retrain(url, headers)
        print(json.dumps(results["retrain"]), flush=True)
    finally:
        stop_server(process)

    process, url = start_server(home, {**env, "KILN_PREDICTIVE_SCALING": "apply"}, log)
    try:
        poller = InstancePoller(url, headers, args.model)
        poller.start()
        # the forecaster needs its lags and rolling mean: replay from now, measure the next full cycle after them
        start = next_cycle_start(args.cycle, time.time() + 25 * args.step)
        print("apply: warm-up, then one cycle", flush=True)
        steps = replay(url, key, args.model, args, script, start + args.cycle, seed=1 + args.train_cycles)
        poller.stopped.set()
        all_steps["apply"] = steps
        results["apply"] = measure("apply", url, headers, poller, steps, start, start + args.cycle, args.model)
        print(json.dumps(results["apply"]), flush=True)
    finally:
        stop_server(process)

    reactive, apply = results["reactive"], results["apply"]
    if reactive["ramp_p95_ms"] and apply["ramp_p95_ms"]:
        results["ramp_p95_cut"] = round(1 - apply["ramp_p95_ms"] / reactive["ramp_p95_ms"], 3)
    if reactive["instance_minutes"]:
        results["extra_instance_minutes"] = round(apply["instance_minutes"] / reactive["instance_minutes"] - 1, 3)
    print("\n| mode | ramp p95 ms | cycle p95 ms | instance-min | cold starts | pre-warms | requests | non-2xx |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in (reactive, apply):
        print(f"| {row['mode']} | {row['ramp_p95_ms']} | {row['cycle_p95_ms']} | {row['instance_minutes']} | "
              f"{row['cold_starts']} | {row['prewarms']} | {row['requests']} | {row['non_2xx']} |")
    print(f"\nramp p95 cut: {results.get('ramp_p95_cut')} (goal >= 0.30); extra instance-minutes: "
          f"{results.get('extra_instance_minutes')} (goal <= 0.10); server log: {log}")
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                        "steps": all_steps}, indent=1))


if __name__ == "__main__":
    main()
