"""``kiln doctor``: every store the settings point at, checked for real: reachable, migrated, writable.
Each check says what is wrong and how to fix it. The embedded default (files and sqlite in KILN_HOME)
passes on a fresh machine; the scale-out profile checks its servers (Postgres, Redis, RabbitMQ, MLflow)."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from kiln.settings import Settings


@dataclass
class Check:
    store: str
    target: str
    ok: bool
    detail: str


def masked(url: str | None) -> str:
    """A URL without its password."""
    if not url or "://" not in url:
        return url or ""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def writable_folder(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".kiln-doctor-") as handle:
        handle.write(b"ok")
    return f"writable ({path})"


def records(settings: Settings) -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from kiln.db import VERSION_TABLE, Database

    database = Database(settings.records_database_url)
    config = Config()
    config.set_main_option("script_location", "kiln:migrations")
    head = ScriptDirectory.from_config(config).get_current_head()
    try:
        with database.engine.connect() as connection:
            try:
                version = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
            except Exception:
                version = None
            connection.rollback()
            if version != head:
                raise RuntimeError(f"schema at {version or 'nothing'}, code needs {head}: run `kiln doctor --migrate` "
                                   "(or start `kiln serve`: it migrates)")
            with connection.begin() as transaction:  # writable: the insert goes through; nothing is kept
                connection.execute(text("INSERT INTO events (type, data, created_at) VALUES ('doctor', '{}', CURRENT_TIMESTAMP)"))
                transaction.rollback()
        return f"reachable, migrated to {head}, writable"
    finally:
        database.dispose()


def postgres(url: str, table: str, missing: str) -> str:
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://").replace("postgresql+psycopg2://", "postgresql://")
    with psycopg.connect(plain, connect_timeout=5) as connection:
        found = connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]
        if found is None:
            raise RuntimeError(missing)
        connection.execute("CREATE TEMP TABLE kiln_doctor (x int)")
    return "reachable, migrated, writable"


def redis_store(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    key = f"kiln-doctor-{uuid.uuid4().hex}"
    client.set(key, "ok", ex=10)
    if client.get(key) != b"ok":
        raise RuntimeError("a value written could not be read back")
    client.delete(key)
    return "reachable, writable"


def amqp(url: str) -> str:
    from kombu import Connection

    with Connection(url, connect_timeout=5) as connection:
        connection.ensure_connection(max_retries=1)
    return "reachable"


def mlflow_store(settings: Settings) -> str:
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        import httpx

        response = httpx.get(f"{uri.rstrip('/')}/health", timeout=5)
        if response.status_code != 200:
            raise RuntimeError(f"the MLflow server answered {response.status_code} on /health")
        return "server reachable"
    if uri.startswith("sqlite:///"):
        return writable_folder(Path(uri.removeprefix("sqlite:///")).parent)
    return postgres(uri, "experiments", "no MLflow tables: start `mlflow server` on it once (it migrates), or run "
                    "`mlflow db upgrade <uri>`")


def postgres_urls(settings: Settings) -> list[str]:
    candidates = [settings.records_database_url, settings.dagster_postgres_url, settings.mlflow_backend_store_uri,
                  settings.tracking_uri]
    return [u for u in candidates if u and u.startswith("postgresql")]


def create_missing_databases(settings: Settings) -> list[str]:
    """CREATE DATABASE for every Postgres database the settings name that does not exist yet."""
    import psycopg

    created = []
    for url in dict.fromkeys(postgres_urls(settings)):
        parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://").replace("postgresql+psycopg2://", "postgresql://"))
        name = parts.path.lstrip("/")
        admin = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
            if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                connection.execute(f'CREATE DATABASE "{name}"')
                created.append(name)
    return created


def migrate(settings: Settings) -> list[str]:
    """Create missing databases and bring Kiln's records to the newest schema; what was done."""
    import subprocess
    import sys

    from kiln.db import Database

    done = [f"created database {name}" for name in create_missing_databases(settings)]
    database = Database(settings.records_database_url)
    try:
        database.migrate()
        done.append("Kiln's records migrated")
    finally:
        database.dispose()
    bin_dir = Path(sys.executable).parent
    if settings.dagster_postgres_url:  # Dagster and MLflow migrate their own schemas (as processes: kiln imports neither)
        subprocess.run([str(bin_dir / "dagster"), "instance", "migrate"], check=True, capture_output=True)
        done.append("Dagster storage migrated")
    if settings.tracking_uri.startswith("postgresql"):
        subprocess.run([str(bin_dir / "mlflow"), "db", "upgrade", settings.tracking_uri], check=True, capture_output=True)
        done.append("MLflow store migrated")
    return done


def run_checks(settings: Settings) -> list[Check]:
    checks: list[tuple[str, str, Callable[[], str]]] = [
        ("Kiln's records", masked(settings.records_database_url), lambda: records(settings)),
        ("model store", str(settings.model_store_dir), lambda: writable_folder(settings.model_store_dir)),
        ("files", str(settings.file_store_dir), lambda: writable_folder(settings.file_store_dir)),
        ("BentoML store", str(settings.bentoml_home), lambda: writable_folder(settings.bentoml_home)),
        ("MLflow", masked(settings.tracking_uri), lambda: mlflow_store(settings)),
    ]
    if settings.dagster_postgres_url:
        checks.append(("Dagster storage", masked(settings.dagster_postgres_url), lambda: postgres(
            settings.dagster_postgres_url, "runs",
            "no Dagster tables: start `dagster dev` or `dagster-daemon` on it once, or `dagster instance migrate`")))
    else:
        checks.append(("Dagster storage", str(settings.dagster_home), lambda: writable_folder(settings.dagster_home)))
    if settings.task_queue == "redis":
        checks.append(("task queue", masked(settings.task_broker), lambda: redis_store(settings.task_broker or "")))
    else:
        checks.append(("task queue", str(settings.task_queue_file), lambda: writable_folder(settings.task_queue_file.parent)))
    if settings.redis_url:
        checks.append(("caches and rate limits", masked(settings.redis_url), lambda: redis_store(settings.redis_url)))
    if settings.dagster_celery_broker:
        checks.append(("pipeline step broker", masked(settings.dagster_celery_broker), lambda: amqp(settings.dagster_celery_broker)))
    results = []
    for store, target, check in checks:
        try:
            results.append(Check(store, target, True, check()))
        except Exception as exc:  # every failure is a finding, with what the server said
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            results.append(Check(store, target, False, f"{type(exc).__name__}: {message}"))
    return results


def stores_in_use(settings: Settings) -> dict[str, str]:
    """Which store each part uses: what `kiln settings` prints first."""
    return {
        "records (users, keys, tasks, files)": masked(settings.records_database_url),
        "Dagster runs and events": masked(settings.dagster_postgres_url) or f"sqlite in {settings.dagster_home}",
        "pipeline steps": f"Celery workers via {masked(settings.dagster_celery_broker)}" if settings.dagster_celery_broker
        else "the run's own process",
        "MLflow": masked(settings.tracking_uri) + (f" (server on {masked(settings.mlflow_backend_store_uri)})"
                                                  if settings.mlflow_backend_store_uri else ""),
        "task queue": f"redis {masked(settings.task_broker)}" if settings.task_queue == "redis" else f"sqlite {settings.task_queue_file}",
        "caches and rate limits": masked(settings.redis_url) or "in process",
        "files": str(settings.file_store_dir),
        "served models (BentoML)": str(settings.bentoml_home),
        "profile": "shared" if any([settings.database_url, settings.dagster_postgres_url, settings.task_queue == "redis",
                                    settings.redis_url]) else "embedded (one machine, no servers)",
    }
