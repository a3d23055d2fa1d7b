"""The ``kiln`` command. It launches the adapters (Dagster, BentoML, MLflow) as processes, so the core
never imports them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from kiln.settings import configure_environment, get_settings

app = typer.Typer(help="Kiln: a self-hosted MLOps workspace.", no_args_is_help=True, add_completion=False)
PROFILES = Path(__file__).resolve().parents[1] / "assets" / "profiles"


@app.callback()
def main(
    profile: Annotated[Optional[str], typer.Option(envvar="KILN_PROFILE", help="A settings profile: `shared` moves every "
                                                   "store to servers (assets/profiles/shared.env)")] = None,
) -> None:
    """Kiln: a self-hosted MLOps workspace."""
    if profile:
        load_profile(profile)


def load_profile(name: str) -> None:
    """Put the profile's KILN_* settings in the environment (variables already set win)."""
    path = PROFILES / f"{name}.env"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES.glob("*.env")))
        typer.echo(f"Error: no profile {name!r} (profiles: {known})", err=True)
        raise typer.Exit(2)
    for line in path.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            os.environ.setdefault(key.strip(), value.strip())
    os.environ["KILN_PROFILE"] = name
    get_settings.cache_clear()


@app.command()
def pipeline(
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="Catalog model (repeatable); default: all")] = None,
    bento: Annotated[bool, typer.Option(help="Build the serving bundle (bento) with the champions afterwards")] = True,
) -> None:
    """Materialize the model pipeline (fetch/train/fine-tune -> optimize -> evaluate -> register -> BentoML) and exit."""
    configure_environment()
    args = [arg for name in model or [] for arg in ("--model", name)] + ([] if bento else ["--no-bento"])
    raise typer.Exit(subprocess.call([sys.executable, "-m", "pipelines.run", *args]))


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Bind address (default KILN_HOST)")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default KILN_PORT)")] = None,
) -> None:
    """Start the BentoML gateway (the HTTP API) in the foreground."""
    from kiln.access import warn_if_exposed
    from kiln.integrations.bentoml_serve import gateway_command
    from kiln.supervise import supervise

    settings = configure_environment()
    warn_if_exposed(settings, host or settings.host)
    announce_admin_key(settings)
    command = gateway_command(settings, host or settings.host, port or settings.port)
    os.environ["KILN_BIND_HOST"] = host or settings.host  # the Host headers the server answers start from it
    raise typer.Exit(supervise(command, settings.shutdown_timeout_seconds))


def announce_admin_key(settings) -> None:
    """With auth off the admin routes still need an admin credential: say where the local one is (the
    server writes it on first start), as Jupyter prints its token."""
    from kiln.access.service import LOCAL_ADMIN_KEY_FILE

    if not settings.enable_auth:
        typer.echo(f"Admin routes (keys, users, scaling, log deletion...) need the local admin key: "
                   f"X-API-Key: $(cat {settings.home_dir / LOCAL_ADMIN_KEY_FILE})", err=True)


@app.command()
def api(
    host: Annotated[str, typer.Option("--host", "-h", help="Host to bind to")] = "0.0.0.0",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to bind to")] = 8000,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Gateway worker processes")] = 1,
    reload: Annotated[bool, typer.Option("--reload", help="Restart on code changes (development)")] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning, error")] = "info",
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log every request")] = True,
    timeout_keep_alive: Annotated[Optional[int], typer.Option("--timeout-keep-alive", help="Not adjustable under BentoML (5)")] = None,
    ssl_keyfile: Annotated[Optional[str], typer.Option("--ssl-keyfile", help="SSL key file")] = None,
    ssl_certfile: Annotated[Optional[str], typer.Option("--ssl-certfile", help="SSL certificate file")] = None,
    ssl_keyfile_password: Annotated[Optional[str], typer.Option("--ssl-keyfile-password", help="SSL key password")] = None,
    ssl_version: Annotated[Optional[int], typer.Option("--ssl-version", help="SSL version (ssl module constant)")] = None,
    ssl_cert_reqs: Annotated[Optional[int], typer.Option("--ssl-cert-reqs", help="Client certificate requirement (0-2)")] = None,
    ssl_ca_certs: Annotated[Optional[str], typer.Option("--ssl-ca-certs", help="CA certificates file")] = None,
    ssl_ciphers: Annotated[Optional[str], typer.Option("--ssl-ciphers", help="SSL ciphers")] = None,
    header: Annotated[Optional[list[str]], typer.Option("--header", help="Extra response header 'Name: value' (repeatable)")] = None,
    forwarded_allow_ips: Annotated[Optional[str], typer.Option("--forwarded-allow-ips", help="Proxies trusted for X-Forwarded-*")] = None,
    root_path: Annotated[Optional[str], typer.Option("--root-path", help="Path prefix the app is served under")] = None,
    proxy_headers: Annotated[bool, typer.Option("--proxy-headers/--no-proxy-headers", help="Honour X-Forwarded-For/-Proto")] = True,
    server_header: Annotated[bool, typer.Option("--server-header/--no-server-header", help="Always on under BentoML")] = True,
    date_header: Annotated[bool, typer.Option("--date-header/--no-date-header", help="Always on under BentoML")] = True,
) -> None:
    """Start the HTTP API (the BentoML gateway) with the options of TTSKit's `ttskit api`."""
    from kiln.integrations.bentoml_serve import ApiOptionError, api_command
    from kiln.supervise import supervise

    settings = configure_environment()
    ssl = {"keyfile": ssl_keyfile, "certfile": ssl_certfile, "keyfile_password": ssl_keyfile_password,
           "version": ssl_version, "cert_reqs": ssl_cert_reqs, "ca_certs": ssl_ca_certs, "ciphers": ssl_ciphers}
    try:
        command, env = api_command(
            settings, host=host, port=port, workers=workers, reload=reload, log_level=log_level, access_log=access_log,
            ssl=ssl, headers=header, proxy_headers=proxy_headers, forwarded_allow_ips=forwarded_allow_ips,
            root_path=root_path, timeout_keep_alive=timeout_keep_alive, server_header=server_header,
            date_header=date_header,
        )
    except ApiOptionError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from exc
    scheme = "https" if ssl_certfile else "http"
    typer.echo(f"Kiln API on {scheme}://{host}:{port}  (docs {scheme}://{host}:{port}/docs, workers {workers})")
    os.environ.update(env)
    os.environ["KILN_BIND_HOST"] = host  # the Host headers the server answers start from it
    raise typer.Exit(supervise(command, settings.shutdown_timeout_seconds))


@app.command()
def worker(
    threads: Annotated[Optional[int], typer.Option("--threads", "-t", help="Tasks run at once (default KILN_TASK_WORKERS, at least 1)")] = None,
) -> None:
    """Run task workers in the foreground, on any machine that reaches the queue and Kiln's database.

    `kiln serve` already runs KILN_TASK_WORKERS of them in the gateway; set it to 0 there and start
    `kiln worker` to run tasks in their own processes or on other machines (KILN_TASK_QUEUE=redis)."""
    import logging

    from kiln.db import Database
    from kiln.logs import setup_logging
    from kiln.tasks.worker import TaskWorkers

    settings = configure_environment()
    setup_logging("tasks", settings.logs_dir, settings.log_level, settings.log_max_bytes, settings.log_backups)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    workers = TaskWorkers(settings, Database(settings.records_database_url), threads=threads)
    typer.echo(f"kiln worker {workers.runner.worker_id}: {workers.threads} thread(s) on the {settings.task_queue} queue; "
               f"API for model work: {settings.api_url}", err=True)
    workers.run()


@app.command("pipeline-worker")
def pipeline_worker(
    name: Annotated[Optional[str], typer.Option(help="The worker's name (default: dagster-<host>-<pid>)")] = None,
    concurrency: Annotated[int, typer.Option(help="Steps run at once")] = 1,
) -> None:
    """Scale-out: a Celery worker that runs pipeline steps (KILN_DAGSTER_CELERY_BROKER), on any machine that
    shares the Dagster storage (KILN_DAGSTER_POSTGRES_URL), Kiln's records and the model store."""
    import tempfile

    import yaml

    settings = configure_environment()
    if not settings.dagster_celery_broker:
        typer.echo("Error: set KILN_DAGSTER_CELERY_BROKER (e.g. pyamqp://guest:guest@127.0.0.1:5672//)", err=True)
        raise typer.Exit(2)
    config = Path(tempfile.mkdtemp(prefix="kiln-celery-")) / "celery.yaml"
    config.write_text(yaml.safe_dump({"broker": settings.dagster_celery_broker, "backend": "rpc://"}))
    command = [sys.executable, "-m", "dagster_celery.cli", "worker", "start", "-A", "dagster_celery.app", "-y", str(config),
               "--name", name or f"dagster-{os.uname().nodename}-{os.getpid()}", "--", f"--concurrency={concurrency}"]
    os.chdir(settings.workspace)  # the workers import the pipelines from the checkout
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # it runs `celery`
    os.execvp(command[0], command)


@app.command()
def up(
    skip_pipeline: Annotated[bool, typer.Option(help="Do not run the pipeline first")] = False,
) -> None:
    """Run the pipeline, then start the API, the Dagster UI and the MLflow UI until Ctrl-C."""
    from kiln.services import run_workspace

    raise typer.Exit(run_workspace(configure_environment(), run_pipeline=not skip_pipeline))


users_app = typer.Typer(help="Users of the HTTP API (Kiln's records database): create, list, revoke.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (stored hashed; a new key is shown once): create, list, revoke.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
PERMISSION_HELP = "read, write, admin (repeatable; admin includes write, write includes read)"


def access_control():
    from kiln.access.service import AccessControl

    configure_environment()
    access = AccessControl(get_settings())
    access.start()  # migrations, as the server's start-up does
    return access


def fail(exc: Exception) -> typer.Exit:
    from kiln.errors import KilnError

    if not isinstance(exc, KilnError):
        raise exc
    typer.echo(f"Error: {exc.message}", err=True)
    return typer.Exit(1)


@users_app.command("create")
def users_create(
    username: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters")],
    permission: Annotated[Optional[list[str]], typer.Option("--permission", "-p", help=PERMISSION_HELP)] = None,
    email: Annotated[Optional[str], typer.Option(help="Email address")] = None,
) -> None:
    """Create a user who logs in with a password (POST /auth/login)."""
    try:
        user = access_control().register(username, password, email, permissions=permission or ["read", "write"])
    except Exception as exc:
        raise fail(exc) from exc
    typer.echo(f"created user {user.username} ({','.join(user.permission_list)})")


@users_app.command("list")
def users_list() -> None:
    """Every user, with permissions and whether the account is active."""
    for user in access_control().list_users():
        state = "active" if user.is_active else "revoked"
        typer.echo(f"{user.username:<24} {','.join(user.permission_list):<18} {state:<8} created {user.created_at:%Y-%m-%d}")


@users_app.command("revoke")
def users_revoke(username: str) -> None:
    """Deactivate a user: their tokens, password and generated keys stop working at once."""
    try:
        user, keys = access_control().revoke_user(username)
    except Exception as exc:
        raise fail(exc) from exc
    typer.echo(f"revoked user {user.username} (and {keys} API key(s) they generated)")


@keys_app.command("create")
def keys_create(
    key_id: Annotated[str, typer.Argument(help="The key's name (TTSKit calls it user_id)")],
    permission: Annotated[Optional[list[str]], typer.Option("--permission", "-p", help=PERMISSION_HELP)] = None,
) -> None:
    """Create an API key and print it once: Kiln keeps only its hash."""
    try:
        record, key = access_control().create_key(key_id, permission or ["read", "write"], source="cli")
    except Exception as exc:
        raise fail(exc) from exc
    typer.echo(f"created key {record.user_id} ({','.join(record.permission_list)}); store it now, it is not shown again:")
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """Every API key: name, permissions, where it came from, last use (never the key)."""
    for record in access_control().list_keys():
        used = f"{record.last_used_at:%Y-%m-%d %H:%M}" if record.last_used_at else "never"
        typer.echo(f"{record.user_id:<24} {','.join(record.permission_list):<18} {record.source:<6} {record.key_hint:<12} last used {used}")


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Delete an API key: every server sharing this database refuses it at once."""
    try:
        access_control().delete_key(key_id)
    except Exception as exc:
        raise fail(exc) from exc
    typer.echo(f"revoked key {key_id}")


@app.command()
def doctor(
    migrate: Annotated[bool, typer.Option("--migrate", help="First create missing Postgres databases and migrate Kiln's records")] = False,
) -> None:
    """Check every configured store for real (reachable, migrated, writable) and say what is wrong."""
    from kiln.doctor import migrate as migrate_stores
    from kiln.doctor import run_checks

    settings = configure_environment()
    if migrate:
        for step in migrate_stores(settings):
            typer.echo(f"==> {step}")
    checks = run_checks(settings)
    width = max(len(c.store) for c in checks)
    for check in checks:
        typer.echo(f"{'ok  ' if check.ok else 'FAIL'}  {check.store:<{width}}  {check.target}\n      {check.detail}")
    failed = [c for c in checks if not c.ok]
    typer.echo(f"{len(checks) - len(failed)} of {len(checks)} stores ok" + (f"; fix: {', '.join(c.store for c in failed)}" if failed else ""))
    raise typer.Exit(1 if failed else 0)


@app.command()
def settings() -> None:
    """Print which store each part uses, then every effective setting (secrets masked)."""
    from kiln.doctor import stores_in_use

    current = get_settings()
    for part, where in stores_in_use(current).items():
        typer.echo(f"# {part}: {where}")
    for key, value in current.model_dump().items():
        typer.echo(f"KILN_{key.upper()}={'' if value is None else value}")
    typer.echo(f"# home={current.home_dir} mlflow={current.tracking_uri}")


if __name__ == "__main__":
    app()
