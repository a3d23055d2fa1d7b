"""``GET /``: the API information and endpoint list (seed 000) for JSON clients, and Kiln's home page
for browsers: what is served, the state of each model and speech engine, and links to the Dagster UI,
the MLflow UI and the API docs. The page is self-contained (no script, font or badge from the internet)."""

from __future__ import annotations

import asyncio
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from bentos.api.http.backends import SettingsDep, backend
from bentos.api.http.timeutil import now
from bentos.api.inference.deps import ModelsDep, WorkerDep
from bentos.clients import SpeechClient
from kiln import __version__
from kiln.errors import KilnError

router = APIRouter(tags=["system"])
# The page reports the speech engines when the audio service is there; the JSON answer does not need it.
OptionalSpeech = Annotated[SpeechClient | None, Depends(backend("speech", required=False))]

DOCS = {"swagger": "/docs", "redoc": "/redoc", "openapi": "/openapi.json"}


def wants_html(request: Request) -> bool:
    """Browsers ask for text/html; JSON clients (and ``?format=json``) get the JSON answer."""
    if request.query_params.get("format") == "json":
        return False
    return "text/html" in request.headers.get("accept", "").lower()


@router.get("/", summary="API information and endpoints (JSON); Kiln's home page for browsers",
            responses={200: {"content": {"application/json": {}, "text/html": {}}}})
async def root(request: Request, models: ModelsDep, worker: WorkerDep, speech: OptionalSpeech, settings: SettingsDep):
    if wants_html(request):
        return HTMLResponse(await home_page(request, models, worker, speech, settings))
    paths = request.app.openapi()["paths"]
    endpoints = [
        {"path": path, "methods": sorted(m.upper() for m in operations), "summary": next(iter(operations.values())).get("summary")}
        for path, operations in paths.items()
    ]
    return {
        "success": True,
        "name": "Kiln inference API",
        "version": __version__,
        "description": "Model serving: prediction with adaptive batching, model management, autoscaling, devices, server and logs.",
        "status": "running",
        "served_models": sorted(models.models),
        "docs": DOCS,
        "endpoints": sorted(endpoints, key=lambda e: e["path"]),
        "timestamp": now(),
    }


async def reachable(url: str) -> bool:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=0.5) as client:
            return (await client.get(url)).status_code < 500
    except httpx.HTTPError:
        return False


def ui_url(request: Request, port: int) -> str:
    """The UI on the host the browser used to reach this server (127.0.0.1, or the machine's name)."""
    return f"{request.url.scheme}://{request.url.hostname}:{port}"


async def home_page(request: Request, models: Any, worker: Any, speech: Any, settings: Any) -> str:
    dagster, mlflow = ui_url(request, settings.dagster_port), ui_url(request, settings.mlflow_port)
    local_dagster = f"http://{settings.host}:{settings.dagster_port}/server_info"
    local_mlflow = f"http://{settings.host}:{settings.mlflow_port}/health"

    async def engines() -> dict:
        if speech is None:
            return {"error": "no audio service in this server"}
        try:
            return await speech.call("describe")
        except KilnError as exc:
            return {"error": exc.message}

    status, described, dagster_up, mlflow_up = await asyncio.gather(
        worker.status(), engines(), reachable(local_dagster), reachable(local_mlflow)
    )
    pools = status.get("models", {})
    rows = []
    for name, model in sorted(models.models.items()):
        pool = pools.get(name, {})
        state = f"loaded, {pool.get('instances', 0)} instance(s)" if pool.get("loaded") else "not loaded (loads on first request)"
        rows.append(
            f"<tr><td><b>{escape(name)}</b></td><td>{escape(model.task)}</td><td>{escape(model.registry_version or '-')}</td>"
            f"<td>{escape(state)}</td><td><code>{escape(model.mlflow_run_id or '-')}</code></td></tr>"
        )
    missing = [e.name for e in models.catalog.models if e.name not in models.models]
    engine_rows = []
    for kind in ("tts", "stt"):
        for name, engine in sorted((described.get(kind) or {}).items()):
            ok = engine.get("available")
            note = "available" if ok else f"unavailable: {engine.get('reason', '')}"
            engine_rows.append(f"<tr><td>{kind.upper()}</td><td><b>{escape(name)}</b></td><td class='{'ok' if ok else 'off'}'>"
                               f"{escape(note)}</td></tr>")
    if "error" in described:
        engine_rows.append(f"<tr><td colspan=3 class='off'>{escape(described['error'])}</td></tr>")

    def link(url: str, label: str, up: bool | None = None) -> str:
        badge = "" if up is None else (" <span class='ok'>running</span>" if up else " <span class='off'>not running</span>")
        return f"<li><a href='{escape(url)}'>{escape(label)}</a>{badge}</li>"

    worker_state = escape(status.get("status", "unknown"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kiln</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; padding: 0 1rem; }}
h1 {{ margin-bottom: 0; }} .sub {{ color: #666; margin-top: .2rem; }}
table {{ border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .35rem .5rem; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; }} code {{ font-size: .85em; }}
.ok {{ color: #17702f; }} .off {{ color: #a33; }} ul {{ line-height: 1.8; }}
</style></head>
<body>
<h1>Kiln</h1>
<p class="sub">Self-hosted MLOps workspace &middot; version {escape(__version__)} &middot; model worker: {worker_state}</p>
<h2>Where to go</h2>
<ul>
{link("/docs", "API documentation (Swagger UI)")}
{link("/redoc", "API reference (ReDoc)")}
{link("/openapi.json", "OpenAPI spec")}
{link(dagster, "Dagster UI: the asset graph, runs and their metadata", dagster_up)}
{link(mlflow, "MLflow UI: experiments, runs, the model registry", mlflow_up)}
</ul>
<h2>Served models</h2>
<table><tr><th>model</th><th>task</th><th>registry version</th><th>state</th><th>MLflow run</th></tr>
{''.join(rows) or "<tr><td colspan=5>No model is served yet: run <code>kiln pipeline</code>.</td></tr>"}
</table>
{f"<p>In the catalog but not built yet: {escape(', '.join(missing))} (run <code>kiln pipeline --model NAME</code>).</p>" if missing else ""}
<h2>Speech engines</h2>
<table><tr><th>kind</th><th>engine</th><th>state</th></tr>{''.join(engine_rows)}</table>
<p class="sub">Try: <code>curl -s -X POST {escape(str(request.base_url))}predict -H 'Content-Type: application/json'
-d '{{"model_name": "minilm", "inputs": "Kiln serves models."}}'</code></p>
</body></html>"""
