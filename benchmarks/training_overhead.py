"""Overhead of the HTTP -> task -> Dagster path of POST /api/training/start, and status latency.

    .venv/bin/python benchmarks/training_overhead.py [--runs 3] [--model-type digits|image_classifier]

Each run creates a digits ``training`` task through the TaskService (what the route calls), runs it in this
process's task runner, which launches the Dagster run of ``user_training`` the way a worker does without the
webserver (``python -m pipelines.launch``), and measures:
- request -> launched: the task's first progress (the run exists);
- request -> first training step seen: the first status whose current_step >= 1 (read from MLflow, as
  GET /api/training/status and the websocket see it);
- status latency: GET /api/training/status's work (training_status on the records) p50 / p95 over 200 calls.
Goal (issue 15): the first step within 15 s of the request on 2 cores. ``image_classifier`` trains
EfficientNet-Lite0 (2 epochs at 128 px) on an uploaded .zip of 36 digit images, and includes its registration
(MLflow, champion gate, BentoML import) in "done".
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("KILN_HOME", tempfile.mkdtemp(prefix="kiln-bench-training-"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiln.settings import configure_environment, get_settings  # noqa: E402

configure_environment()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model-type", choices=("digits", "image_classifier"), default="digits")
    args = parser.parse_args()
    from kiln.db import Database
    from kiln.filestore.store import FileStore
    from kiln.tasks.registry import default_registry
    from kiln.tasks.runner import TaskRunner
    from kiln.tasks.service import TaskService
    from kiln.training.progress import training_status

    settings = get_settings().model_copy(update={"dagster_port": 1, "task_progress_seconds": 0})
    database = Database(settings.records_database_url)
    database.migrate()
    files = FileStore(settings, database)
    service = TaskService(settings, database, services=files)
    runner = TaskRunner(settings, database, default_registry(), files, worker_id="bench")
    launched, first_step, total = [], [], []
    base = {"model_type": "digits", "base_model": "digits-mlp", "epochs": 2}
    if args.model_type == "image_classifier":
        from kiln.store import ModelStore
        from tests.digit_images import digit_pngs, store_lite0, zip_bytes

        store_lite0(ModelStore(settings.model_store_dir))
        archive = files.save_bytes(zip_bytes(digit_pngs()), "digits.zip", "application/zip", None, status="uploaded")
        base = {"model_type": "image_classifier", "base_model": "efficientnet-lite0", "dataset_path": archive.id,
                "epochs": 2, "batch_size": 8, "image_size": 128}
    for index in range(args.runs):
        params = {**base, "output_dir": f"bench-{index}"}
        started = time.perf_counter()
        task = service.create(None, "bench", "training", params)
        thread = threading.Thread(target=runner.run, args=(task.id, task.dispatch))
        thread.start()
        seen_launch = seen_step = None
        while thread.is_alive():
            status = training_status(service.get(task.id, None, True), database)
            now = time.perf_counter() - started
            if seen_launch is None and status["progress"] >= 1:
                seen_launch = now
            if seen_step is None and status["current_step"] >= 1:
                seen_step = now
            time.sleep(0.05)
        thread.join()
        total.append(time.perf_counter() - started)
        launched.append(seen_launch or float("nan"))
        first_step.append(seen_step or float("nan"))
        print(f"run {index + 1}: launched {launched[-1]:.2f} s, first step {first_step[-1]:.2f} s, "
              f"done {total[-1]:.2f} s ({service.get(task.id, None, True).status})", flush=True)
        if service.get(task.id, None, True).error:
            print(f"  error: {service.get(task.id, None, True).error}", flush=True)
    task = service.get(task.id, None, True)
    timings = []
    for _ in range(200):
        t0 = time.perf_counter()
        training_status(task, database)
        timings.append((time.perf_counter() - t0) * 1000)
    timings.sort()
    print(f"request -> launched: median {statistics.median(launched):.2f} s")
    print(f"request -> first step: median {statistics.median(first_step):.2f} s (goal <= 15 s)")
    print(f"status latency: p50 {timings[100]:.2f} ms, p95 {timings[190]:.2f} ms")


if __name__ == "__main__":
    main()
