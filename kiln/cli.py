"""The ``kiln`` command. It launches the adapters (Dagster, BentoML, MLflow) as processes, so the core
never imports them."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated, Optional

import typer

from kiln.settings import configure_environment, get_settings

app = typer.Typer(help="Kiln: a self-hosted MLOps workspace.", no_args_is_help=True, add_completion=False)


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
    from kiln.services import gateway_command

    settings = configure_environment()
    warn_if_exposed(settings, host or settings.host)
    command = gateway_command(settings, host or settings.host, port or settings.port)
    os.execvp(command[0], command)


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
    from kiln.services import ApiOptionError, api_command

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
    typer.echo(f"Kiln API on {scheme}://{host}:{port}  (docs {scheme}://{host}:{port}/api/docs, workers {workers})")
    os.environ.update(env)
    os.execvp(command[0], command)


@app.command()
def up(
    skip_pipeline: Annotated[bool, typer.Option(help="Do not run the pipeline first")] = False,
) -> None:
    """Run the pipeline, then start the API, the Dagster UI and the MLflow UI until Ctrl-C."""
    from kiln.services import run_workspace

    raise typer.Exit(run_workspace(configure_environment(), run_pipeline=not skip_pipeline))


@app.command()
def settings() -> None:
    """Print the effective settings."""
    current = get_settings()
    for key, value in current.model_dump().items():
        typer.echo(f"KILN_{key.upper()}={'' if value is None else value}")
    typer.echo(f"# home={current.home_dir} mlflow={current.tracking_uri}")


if __name__ == "__main__":
    app()
