"""The task system over real HTTP with real workers: `kiln serve` (its embedded workers, or none) and
`kiln worker` processes, on the embedded SQLite queue and on the distributed engine (Redis + Postgres).
Faults: kill -9 of a worker mid-task, and a server restart."""

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from kiln.client import KilnClient
from tests.conftest import free_port
from tests.servers import KILN, reachable, start, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def serve(home: Path, log_name: str, **env_overrides):
    """A `kiln serve` on its own KILN_HOME and port; returns (process, url, env)."""
    port = free_port()
    env = {**os.environ, "KILN_HOME": str(home), "KILN_PORT": str(port), "KILN_TASK_HEARTBEAT_SECONDS": "1",
           "KILN_TASK_LOST_AFTER_SECONDS": "4", "KILN_TASK_PROGRESS_SECONDS": "0.2", **env_overrides}
    log = home / f"{log_name}.log"
    process = start([str(KILN), "serve", "--port", str(port)], log, env)
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/health", process, log, ready=lambda r: r.status_code in (200, 503) and "status" in r.json())
    return process, url, env


def worker(home: Path, env: dict, name: str, threads: int = 2) -> subprocess.Popen:
    return start([str(KILN), "worker", "--threads", str(threads)], home / f"{name}.log", env)


def wait_status(client: KilnClient, task_id: str, statuses, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        task = client.tasks.get(task_id)
        if task.status in statuses:
            return task
        assert time.monotonic() < deadline, f"{task_id} is {task.status}: {task}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def home(tmp_path_factory, built_workspace, kiln_home):
    """A home of its own (its own queue and records), with the session's served models."""
    home = tmp_path_factory.mktemp("tasks-http")
    (home / "bentoml").symlink_to(kiln_home / "bentoml")
    return home


def test_the_sdk_example_runs_a_real_task_with_an_output_file(home):
    process, url, _ = serve(home, "serve-embedded")
    try:
        admin = (home / "admin.key").read_text().strip()
        with KilnClient(url, api_key=admin) as client:
            upload = client.files.upload(data=b"text\nA dog runs.\nA cat sleeps.\n", filename="sentences.csv",
                                         content_type="text/csv")
            task = client.tasks.create({"title": "Embed", "task_type": "batch_predict",
                                        "parameters": {"model": "minilm", "input_file": upload.id, "input_column": "text"}})
            done = client.tasks.wait(task.id, timeout=120)
            assert done.status == "completed", done
            lines = client.files.download(done.result["output_file"]).decode().splitlines()
            assert len(lines) == 2 and '"dimensions": 384' in lines[0]
            data = client.tasks.wait(client.tasks.create(title="Process data", task_type="data_processing",
                                                         parameters={"input_file": "sentences.csv"}).id)
            assert data.status == "completed" and data.result["records_processed"] == 2
            metrics = httpx.get(f"{url}/metrics/tasks", headers={"X-API-Key": admin}).json()
            assert metrics["tasks_completed"] >= 2 and metrics["worker_count"] >= 1
        # The document's SDK example, word for word but for the client's name: log in, create, get.
        assert httpx.post(f"{url}/users/register", json={"username": "sdk-user", "password": "correct horse"}).status_code == 201
        client = KilnClient(base_url=url, api_key="not-needed-once-logged-in")
        token = client.auth.login("sdk-user", "correct horse")
        task = client.tasks.create({"title": "Process data", "task_type": "data_processing",
                                    "parameters": {"input_file": upload.id}})
        status = client.tasks.get(task.id)
        assert token and status.id == task.id and status.owner_id  # the task belongs to the logged-in user
        assert client.tasks.wait(task.id).status == "completed"
        client.close()
    finally:
        stop(process)


def test_kill_9_of_a_worker_fails_its_task_and_loses_no_other(home):
    process, url, env = serve(home, "serve-no-workers", KILN_TASK_WORKERS="0")
    first = worker(home, env, "worker-1", threads=1)
    try:
        admin = (home / "admin.key").read_text().strip()
        with KilnClient(url, api_key=admin) as client:
            victim = client.tasks.create(title="victim", task_type="wait", parameters={"seconds": 60, "steps": 60})
            wait_status(client, victim.id, ("running",))
            waiting = [client.tasks.create(title=f"after {i}", task_type="wait", parameters={"seconds": 0.1}) for i in range(5)]
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            killed_at = time.monotonic()
            lost = wait_status(client, victim.id, ("failed",), timeout=30)
            assert "worker running this task was lost" in lost.error and time.monotonic() - killed_at < 15
            assert {client.tasks.get(t.id).status for t in waiting} == {"pending"}  # none lost, none run
            second = worker(home, env, "worker-2", threads=2)
            try:
                for task in waiting:
                    assert wait_status(client, task.id, ("completed", "failed")).status == "completed"
                retried = client.tasks.retry(victim.id)
                assert retried.retry_count == 1 and retried.status == "pending"
                again = wait_status(client, victim.id, ("running",))
                assert again.worker_id != lost.worker_id  # the new worker runs it
                client.tasks.cancel(victim.id)
                assert wait_status(client, victim.id, ("cancelled",), timeout=10).status == "cancelled"
            finally:
                stop(second)
    finally:
        if first.poll() is None:
            stop(first)
        stop(process)


def test_a_server_restart_loses_no_task_user_key_or_file(home):
    process, url, env = serve(home, "serve-before-restart", KILN_TASK_WORKERS="0", KILN_ALLOW_REGISTRATION="true")
    admin = (home / "admin.key").read_text().strip()
    password = "restart-proof-password-1"
    with KilnClient(url, api_key=admin) as client:
        pending = [client.tasks.create(title=f"restart {i}", task_type="wait") for i in range(3)]
        soon = time.time() + 8
        from datetime import datetime, timezone

        scheduled = client.tasks.create(title="scheduled", task_type="wait",
                                        scheduled_at=datetime.fromtimestamp(soon, timezone.utc).isoformat())
        stored = client.files.upload(data=b"kept across restarts\n" * 100, filename="kept.txt")
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/auth/register", json={"username": "restarter", "password": password}).status_code == 201
        token = http.post("/auth/login", json={"username": "restarter", "password": password}).json()["access_token"]
        key = http.post("/auth/generate-key", headers={"Authorization": f"Bearer {token}"}).json()["api_key"]
    stop(process)
    process, url, env = serve(home, "serve-after-restart")  # with its embedded workers this time
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.post("/auth/login", json={"username": "restarter", "password": password}).status_code == 200
            assert http.get("/users/me", headers={"X-API-Key": key}).json()["username"] == "restarter"
        with KilnClient(url, api_key=admin) as client:
            assert client.files.download(stored.id) == b"kept across restarts\n" * 100
            for task in pending:
                assert wait_status(client, task.id, ("completed",)).status == "completed"
            assert client.tasks.get(scheduled.id).status in ("scheduled", "running", "completed")
            done = wait_status(client, scheduled.id, ("completed",), timeout=30)
            assert datetime.fromisoformat(done.started_at.replace("Z", "+00:00")).timestamp() >= soon - 0.05
    finally:
        stop(process)


@pytest.fixture
def postgres_database():
    if not reachable(5432):
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    import psycopg

    name = f"kiln_tasks_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://127.0.0.1:5432/test", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://127.0.0.1:5432/{name}"
    with psycopg.connect("postgresql://127.0.0.1:5432/test", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_distributed_engine_on_redis_and_postgres(home, postgres_database, tmp_path):
    if not reachable(6379):
        pytest.skip("no Redis on 127.0.0.1:6379")
    import redis

    db = 1 + int(uuid.uuid4().int % 14)
    broker = f"redis://127.0.0.1:6379/{db}"
    redis.Redis.from_url(broker).flushdb()
    shared = {"KILN_TASK_QUEUE": "redis", "KILN_TASK_BROKER_URL": broker, "KILN_DATABASE_URL": postgres_database}
    process, url, env = serve(home, "serve-distributed", KILN_TASK_WORKERS="0", **shared)
    # Two workers standing in for two machines: their own KILN_HOME, only the broker and the database shared.
    machines = []
    for index in range(2):
        other = tmp_path / f"machine-{index}"
        other.mkdir()
        machine_env = {**env, "KILN_HOME": str(other), "KILN_TASK_SERVER_URL": url,
                       "KILN_TASK_SERVER_KEY": (home / "worker.key").read_text().strip()}
        machines.append(start([str(KILN), "worker", "--threads", "2"], other / "worker.log", machine_env))
    try:
        admin = (home / "admin.key").read_text().strip()
        with KilnClient(url, api_key=admin) as client:
            tasks = [client.tasks.create(title=f"d{i}", task_type="wait", parameters={"seconds": 0.5},
                                         priority=["low", "critical"][i % 2]) for i in range(12)]
            done = [wait_status(client, t.id, ("completed", "failed"), timeout=60) for t in tasks]
            assert {t.status for t in done} == {"completed"}
            assert len({client.tasks.get(t.id).worker_id for t in tasks}) == 2  # both machines took work
            live = httpx.get(f"{url}/metrics/tasks", headers={"X-API-Key": admin}).json()
            assert live["worker_count"] == 2 and live["queue"] == "redis"
            upload = client.files.upload(data=b"a,b\n1,2\n", filename="x.csv", content_type="text/csv")
            assert client.tasks.wait(client.tasks.create(title="p", task_type="wait").id).status == "completed"
            assert upload.size == 8
    finally:
        for machine in machines:
            stop(machine)
        stop(process)
