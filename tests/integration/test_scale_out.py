"""Scale-out on the loopback servers, for real: the shared profile's stores (Postgres for Kiln's records,
Dagster and MLflow; Redis for rate limits and the task queue; RabbitMQ for pipeline steps; one shared
folder). Two `kiln serve` replicas behave as one service; two `kiln pipeline-worker`s run two models'
steps at once; the champion gate holds when two candidates register together; `kiln doctor` names a
store it cannot reach. Each test skips, saying why, where a server is absent."""

import multiprocessing
import os
import queue
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from kiln.client import KilnClient
from tests.conftest import free_port
from tests.integration.champion_race import race_in_process
from tests.servers import KILN, reachable, start, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ADMIN_KEY = "scale-out-admin-key-0123456789"


def need(*ports_and_names):
    for port, name in ports_and_names:
        if not reachable(port):
            pytest.skip(f"no {name} on 127.0.0.1:{port}")


def test_doctor_names_a_store_it_cannot_reach(tmp_path):
    env = {**os.environ, "KILN_HOME": str(tmp_path), "KILN_REDIS_URL": "redis://127.0.0.1:1/0",
           "KILN_DATABASE_URL": "postgresql+psycopg://127.0.0.1:1/nowhere"}
    result = subprocess.run([str(KILN), "doctor"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    assert any("Kiln's records" in line and "127.0.0.1:1/nowhere" in line for line in failed), result.stdout
    assert any("caches and rate limits" in line for line in failed) and "fix:" in lines[-1]
    assert any(line.startswith("ok") and "model store" in line for line in lines)


@pytest.fixture(scope="module")
def shared(tmp_path_factory, built_workspace, kiln_home):
    """Fresh databases, a Redis database and a shared folder: the shared profile, on loopback."""
    need((5432, "PostgreSQL"), (6379, "Redis"))
    import psycopg
    import redis

    name = f"kiln_so_{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("shared")
    (root / "bentoml").symlink_to(kiln_home / "bentoml")  # the pipeline's champions, served by every replica
    db = 1 + uuid.uuid4().int % 14
    redis.Redis.from_url(f"redis://127.0.0.1:6379/{db}").flushdb()
    env = {
        "KILN_DATABASE_URL": f"postgresql+psycopg://127.0.0.1:5432/{name}",
        "KILN_DAGSTER_POSTGRES_URL": f"postgresql+psycopg2://127.0.0.1:5432/{name}_dagster",
        "KILN_MLFLOW_TRACKING_URI": f"postgresql://127.0.0.1:5432/{name}_mlflow",
        "KILN_REDIS_URL": f"redis://127.0.0.1:6379/{db}", "KILN_TASK_QUEUE": "redis",
        "KILN_SHARED_DIR": str(root), "KILN_DAGSTER_CELERY_BROKER": "pyamqp://guest:guest@127.0.0.1:5672//",
    }
    home = tmp_path_factory.mktemp("shared-home")
    migrate = subprocess.run([str(KILN), "doctor", "--migrate"], env={**os.environ, **env, "KILN_HOME": str(home)},
                             capture_output=True, text=True, timeout=300)
    assert "created database" in migrate.stdout, migrate.stdout + migrate.stderr
    yield {"env": env, "root": root, "name": name}
    with psycopg.connect("postgresql://127.0.0.1:5432/postgres", autocommit=True) as connection:
        for database in (name, f"{name}_dagster", f"{name}_mlflow"):
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def replica(shared, tmp_path_factory, label, **extra):
    home = tmp_path_factory.mktemp(label)
    port = free_port()
    env = {**os.environ, **shared["env"], "KILN_HOME": str(home), "KILN_PORT": str(port), "KILN_ENABLE_AUTH": "true",
           "KILN_API_KEYS": f'{{"admin": "{ADMIN_KEY}"}}', "KILN_TASK_WORKERS": "0", "KILN_ALLOW_REGISTRATION": "true",
           "KILN_RATE_LIMIT_GENERATION": "12/minute", **extra}
    process = start([str(KILN), "serve", "--port", str(port)], home / "serve.log", env)
    wait_for(f"http://127.0.0.1:{port}/health", process, home / "serve.log")
    return process, f"http://127.0.0.1:{port}"


def test_two_replicas_on_the_shared_profile_behave_as_one(shared, tmp_path_factory):
    a, url_a = replica(shared, tmp_path_factory, "replica-a")
    b, url_b = replica(shared, tmp_path_factory, "replica-b")
    admin = {"X-API-Key": ADMIN_KEY}
    try:
        # a user created on one logs in on the other
        assert httpx.post(f"{url_a}/users/register", json={"username": "ann", "password": "correct horse"}).status_code == 201
        on_b = KilnClient(url_b)
        assert on_b.auth.login("ann", "correct horse")
        # an API key revoked on one is refused by the other at once
        key = httpx.post(f"{url_a}/api/v1/admin/api-keys", headers=admin, json={"user_id": "robot", "permissions": ["read"]}).json()["api_key"]
        assert httpx.get(f"{url_b}/info", headers={"X-API-Key": key}).status_code == 200
        assert httpx.delete(f"{url_a}/api/v1/admin/api-keys/robot", headers=admin).status_code == 200
        assert httpx.get(f"{url_b}/info", headers={"X-API-Key": key}).status_code == 401
        # a task created on one is seen, cancelled and retried from the other (no workers run here)
        with KilnClient(url_a, api_key=ADMIN_KEY) as client_a, KilnClient(url_b, api_key=ADMIN_KEY) as client_b:
            task = client_a.tasks.create(title="shared", task_type="wait")
            assert client_b.tasks.get(task.id).status == "pending"
            assert client_b.tasks.cancel(task.id).status == "cancelled"
            assert client_b.tasks.retry(task.id).retry_count == 1
            assert client_a.tasks.get(task.id).status == "pending"
            client_a.tasks.cancel(task.id)
            # a file uploaded to one downloads from the other
            upload = client_a.files.upload(data=b"a,b\n1,2\n", filename="shared.csv", content_type="text/csv")
            assert client_b.files.download(upload.id) == b"a,b\n1,2\n"
            # downloads started on one are visible on the other
            started = httpx.post(f"{url_a}/models/download", headers=admin, json={"name": "minilm"}).json()
            seen = httpx.get(f"{url_b}/models/download/status/{started['download_id']}", headers=admin)
            assert seen.status_code == 200 and seen.json()["model_name"] == "minilm"
            # both serve the same champion: the same version, MLflow run and Dagster run
            answers = [c.predict("minilm", "The same model on both.") for c in (client_a, client_b)]
            assert answers[0]["model_info"] == answers[1]["model_info"] and answers[0]["model_info"]["mlflow_run_id"]
        # rate limits count across both: 12 write calls a minute per key, whichever replica answers
        limited = httpx.post(f"{url_a}/api/v1/admin/api-keys", headers=admin,
                             json={"user_id": "limited", "permissions": ["read", "write"]}).json()["api_key"]
        outcomes = []
        for index in range(13):
            response = httpx.post(f"{(url_a, url_b)[index % 2]}/predict", headers={"X-API-Key": limited},
                                  json={"model_name": "example", "inputs": [0.0] * 64}, timeout=60)
            outcomes.append(response.status_code)
        assert outcomes[:12] == [200] * 12 and outcomes[12] == 429, outcomes
    finally:
        stop(a)
        stop(b)


def run_launch(env: dict, job: str, partition: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipelines.launch", "--job", job, "--partition", partition,
                             "--run-id", str(uuid.uuid4())], env=env, stdout=subprocess.PIPE, text=True)


def test_two_models_train_at_once_on_two_pipeline_workers(shared, tmp_path):
    need((5672, "RabbitMQ"))
    env = {**os.environ, **shared["env"], "KILN_HOME": str(tmp_path / "pipeline-home")}
    workers = [start([str(KILN), "pipeline-worker", "--name", f"w{i}-{uuid.uuid4().hex[:6]}"], tmp_path / f"celery-{i}.log", env)
               for i in range(2)]
    try:
        time.sleep(15)  # the workers import the code location
        runs = {model: run_launch(env, "training", model) for model in ("example", "minilm")}
        outcomes = {}
        for model, process in runs.items():
            lines = process.communicate(timeout=900)[0].splitlines()
            outcomes[model] = next((line for line in reversed(lines) if '"done"' in line), "")
        assert all('"SUCCESS"' in line for line in outcomes.values()), outcomes
        done = [sum("succeeded in" in line for line in (tmp_path / f"celery-{i}.log").read_text().splitlines()) for i in range(2)]
        assert all(count >= 1 for count in done), done  # both workers ran steps
        import psycopg

        dagster_url = shared["env"]["KILN_DAGSTER_POSTGRES_URL"].replace("postgresql+psycopg2://", "postgresql://")
        with psycopg.connect(dagster_url) as connection:
            statuses = [row[0] for row in connection.execute("SELECT status FROM runs WHERE pipeline_name = 'training'")]
        assert statuses.count("SUCCESS") >= 2, statuses
        with psycopg.connect(shared["env"]["KILN_MLFLOW_TRACKING_URI"]) as connection:
            assert connection.execute("SELECT count(*) FROM runs").fetchone()[0] >= 1  # MLflow runs landed in Postgres
    finally:
        for worker in workers:
            stop(worker)


def test_the_champion_gate_holds_when_two_candidates_register_together(shared, tmp_path):
    env = shared["env"]
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(2)
    jobs = [(env["KILN_MLFLOW_TRACKING_URI"], str(shared["root"] / "mlflow-artifacts"), env["KILN_DATABASE_URL"],
             str(tmp_path / "store"), seed, value, barrier) for seed, value in ((1, 0.91), (2, 0.95))]
    # Two plain processes, not a Pool: a Pool's exit terminates and then joins its workers without a bound, and
    # under load a worker that outlived its SIGTERM once held the suite for 20 minutes. These are killed if needed.
    results = context.Queue()
    racers = [context.Process(target=race_in_process, args=(job, results), daemon=True) for job in jobs]
    for racer in racers:
        racer.start()
    try:
        outcomes, deadline = {}, time.monotonic() + 600
        while len(outcomes) < len(racers):
            try:
                seed, ok, value = results.get(timeout=2)
                outcomes[seed] = (ok, value)
            except queue.Empty:
                dead = [r.exitcode for r in racers if r.exitcode not in (None, 0)]
                assert not dead and time.monotonic() < deadline, f"racers ended {dead}, answers so far {outcomes}"
    finally:
        for racer in racers:
            racer.join(timeout=30)
            if racer.is_alive():
                racer.kill()
                racer.join(timeout=5)
    assert all(ok for ok, _ in outcomes.values()), outcomes
    versions = [outcomes[1][1], outcomes[2][1]]
    from kiln.tracking import Tracker

    tracker = Tracker(env["KILN_MLFLOW_TRACKING_URI"], shared["root"] / "mlflow-artifacts", "race")
    champion = tracker.champion("race")
    assert champion is not None and str(champion.version) == versions[1]  # the better one, whoever came second
    assert float(champion.tags["kiln.primary_metric_value"]) == 0.95
