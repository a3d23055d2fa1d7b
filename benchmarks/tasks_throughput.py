"""Task system throughput and start latency, on the embedded engine (SQLite queue + sqlite records) and the
distributed one (Redis broker + Postgres records), with real `kiln worker` processes.

    .venv/bin/python benchmarks/tasks_throughput.py [--tasks 300] [--engines sqlite,redis]

For each engine: no-op tasks (``wait`` 0 s) and 100 ms tasks at concurrency 10 (one worker process with 10
threads). Tasks are created in this process through the TaskService (what POST /tasks calls), so the
figures measure the task system, not HTTP.

- throughput: the tasks are queued first, then the worker starts; tasks/s from the first start to the
  last completion (what the workers sustain, not how fast one producer can create tasks);
- start latency (created -> started) p50/p95: with the worker running, tasks arrive at a steady rate
  (``--rate`` per second) below what it sustains.

Anchors: Celery ~72 tasks/s for 10 concurrent 100 ms tasks (ceiling 100); goal >= 90 tasks/s and start
latency p50 <= 50 ms.
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


def setup(engine: str):
    """A fresh KILN_HOME (and, for redis, a fresh Postgres database and Redis db); returns (env, cleanup)."""
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
    return home, env, cleanup


def start_worker(home: Path, env: dict, threads: int) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "kiln"), "worker", "--threads", str(threads)], env=env, start_new_session=True,
                            stdout=(home / "worker.log").open("ab"), stderr=subprocess.STDOUT)


def stop_worker(worker: subprocess.Popen) -> None:
    os.killpg(worker.pid, signal.SIGINT)
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)


def run(engine: str, tasks: int, seconds: float, rate: float, threads: int = 10, processes: int = 1) -> dict:
    home, env, cleanup = setup(engine)
    os.environ.update(env)
    from kiln import settings as settings_module

    settings_module.get_settings.cache_clear()
    settings = settings_module.get_settings()
    from sqlalchemy import func, select

    from kiln.db import Database
    from kiln.tasks.models import Task
    from kiln.tasks.records import as_utc
    from kiln.tasks.service import TaskService

    database = Database(settings.records_database_url)
    database.migrate()
    service = TaskService(settings, database)

    def wait_done(ids: list[str]) -> list:
        deadline = time.perf_counter() + 600
        while True:
            with database.session() as session:
                done = session.scalar(select(func.count()).select_from(Task).where(
                    Task.id.in_(ids), Task.status.in_(("completed", "failed"))))
            if done >= len(ids):
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"only {done}/{len(ids)} finished")
            time.sleep(0.05)
        with database.session() as session:
            return session.execute(select(Task.created_at, Task.started_at, Task.completed_at, Task.status)
                                   .where(Task.id.in_(ids))).all()

    try:
        # throughput: queue everything, then let the worker at it
        queued = [service.create(None, f"bench {i}", "wait", {"seconds": seconds}).id for i in range(tasks)]
        workers = [start_worker(home, env, threads // processes) for _ in range(processes)]
        try:
            rows = wait_done(queued)
            first_start = min(as_utc(s) for _, s, _, _ in rows)
            last_end = max(as_utc(e) for _, _, e, _ in rows)
            throughput = tasks / (last_end - first_start).total_seconds()
            # start latency: steady arrivals while the worker runs
            arrivals, ids = max(20, tasks // 3), []
            for index in range(arrivals):
                ids.append(service.create(None, f"latency {index}", "wait", {"seconds": seconds}).id)
                time.sleep(1.0 / rate)
            timed = wait_done(ids)
        finally:
            for worker in workers:
                stop_worker(worker)
        latency = [(as_utc(s) - as_utc(c)).total_seconds() * 1000 for c, s, _, _ in timed]
        return {
            "engine": engine, "task_seconds": seconds, "tasks": tasks, "threads": threads, "processes": processes,
            "failed": sum(1 for *_, st in rows + timed if st != "completed"),
            "throughput_per_s": round(throughput, 1), "arrival_rate": rate,
            "start_latency_ms_p50": round(percentile(latency, 50), 1), "start_latency_ms_p95": round(percentile(latency, 95), 1),
            "start_latency_ms_mean": round(statistics.mean(latency), 1),
        }
    finally:
        database.dispose()
        for step in cleanup:
            step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--engines", default="sqlite,redis")
    parser.add_argument("--processes", default="1", help="worker processes sharing the 10 threads, e.g. 1,2")
    parser.add_argument("--rate", type=float, default=20.0, help="arrivals per second for the latency phase")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}")
    rows = []
    for engine in args.engines.split(","):
        for processes in (int(p) for p in args.processes.split(",")):
            for seconds in (0.0, 0.1):
                rows.append(run(engine, args.tasks, seconds, args.rate, processes=processes))
                print(rows[-1], flush=True)
    print(f"load after: {os.getloadavg()}")
    print("\n| engine | task | workers | tasks/s | start latency p50 ms | p95 ms | arrivals/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        kind = "no-op" if r["task_seconds"] == 0 else f"{int(r['task_seconds'] * 1000)} ms"
        print(f"| {r['engine']} | {kind} | {r['processes']} x {r['threads'] // r['processes']} threads | {r['throughput_per_s']} | "
              f"{r['start_latency_ms_p50']} | {r['start_latency_ms_p95']} | {r['arrival_rate']} |")


if __name__ == "__main__":
    main()
