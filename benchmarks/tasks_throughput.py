"""Task system throughput and start latency, on the embedded engine (SQLite queue + sqlite records) and the
distributed one (Redis broker + Postgres records), with real `kiln worker` processes.

    .venv/bin/python benchmarks/tasks_throughput.py [--tasks 300] [--engines sqlite,redis]

For each engine: no-op tasks (``wait`` 0 s) and 100 ms tasks at concurrency 10 (one worker process with 10
threads). Tasks are created in this process through the TaskService (what POST /tasks calls), so the
figures measure the task system, not HTTP. Reported: tasks/s from the first creation to the last
completion, and start latency (created -> started) p50/p95. Anchors: Celery ~72 tasks/s for 10 concurrent
100 ms tasks (ceiling 100); goal >= 90 tasks/s and start latency p50 <= 50 ms.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BIN = Path(sys.executable).parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def run(engine: str, tasks: int, seconds: float, threads: int = 10) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"kiln-bench-{engine}-"))
    env = {**os.environ, "KILN_HOME": str(home), "KILN_TASK_PROGRESS_SECONDS": "0"}
    cleanup = []
    if engine == "redis":
        import psycopg
        import redis

        name = f"kiln_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect("postgresql://127.0.0.1:5432/test", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        redis.Redis.from_url("redis://127.0.0.1:6379/15").flushdb()
        env.update(KILN_TASK_QUEUE="redis", KILN_TASK_BROKER_URL="redis://127.0.0.1:6379/15",
                   KILN_DATABASE_URL=f"postgresql+psycopg://127.0.0.1:5432/{name}")

        def drop() -> None:
            with psycopg.connect("postgresql://127.0.0.1:5432/test", autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        cleanup.append(drop)
    os.environ.update(env)
    from kiln import settings as settings_module

    settings_module.get_settings.cache_clear()
    settings = settings_module.get_settings()
    from kiln.db import Database
    from kiln.tasks.models import Task
    from kiln.tasks.records import as_utc
    from kiln.tasks.service import TaskService

    database = Database(settings.records_database_url)
    database.migrate()
    service = TaskService(settings, database)
    worker = subprocess.Popen([str(BIN / "kiln"), "worker", "--threads", str(threads)], env=env, start_new_session=True,
                              stdout=(home / "worker.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        from sqlalchemy import func, select

        time.sleep(4.0)  # the worker process imports and starts
        started = time.perf_counter()
        ids = [service.create(None, f"bench {i}", "wait", {"seconds": seconds}).id for i in range(tasks)]
        created = time.perf_counter() - started
        while True:
            with database.session() as session:
                done = session.scalar(select(func.count()).select_from(Task).where(Task.status.in_(("completed", "failed"))))
            if done >= tasks:
                break
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"only {done}/{tasks} finished")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        with database.session() as session:
            rows = session.execute(select(Task.created_at, Task.started_at, Task.completed_at, Task.status)
                                   .where(Task.id.in_(ids))).all()
        latency = [(as_utc(s) - as_utc(c)).total_seconds() * 1000 for c, s, _, _ in rows]
        first_start = min(as_utc(s) for _, s, _, _ in rows)
        last_end = max(as_utc(e) for _, _, e, _ in rows)
        return {
            "engine": engine, "task_seconds": seconds, "tasks": tasks, "failed": sum(1 for *_, st in rows if st != "completed"),
            "create_per_s": round(tasks / created, 1),
            "throughput_per_s": round(tasks / elapsed, 1),
            "run_throughput_per_s": round(tasks / (last_end - first_start).total_seconds(), 1),
            "start_latency_ms_p50": round(percentile(latency, 50), 1), "start_latency_ms_p95": round(percentile(latency, 95), 1),
            "start_latency_ms_mean": round(statistics.mean(latency), 1),
        }
    finally:
        os.killpg(worker.pid, signal.SIGINT)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        database.dispose()
        for step in cleanup:
            step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--engines", default="sqlite,redis")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}")
    rows = []
    for engine in args.engines.split(","):
        for seconds in (0.0, 0.1):
            rows.append(run(engine, args.tasks, seconds))
            print(rows[-1], flush=True)
    print(f"load after: {os.getloadavg()}")
    print("\n| engine | task | tasks/s (create to last done) | tasks/s (first start to last end) | start p50 ms | start p95 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        kind = "no-op" if r["task_seconds"] == 0 else f"{int(r['task_seconds'] * 1000)} ms"
        print(f"| {r['engine']} | {kind} | {r['throughput_per_s']} | {r['run_throughput_per_s']} | "
              f"{r['start_latency_ms_p50']} | {r['start_latency_ms_p95']} |")


if __name__ == "__main__":
    main()
