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
    from kiln.services import gateway_command

    settings = configure_environment()
    command = gateway_command(settings, host or settings.host, port or settings.port)
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
