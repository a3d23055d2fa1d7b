"""What the server's processes import before they are ready. BentoML imports the gateway module in every
process it starts (its arbiter, the model worker, the audio service), so what that module imports is paid
three or four times over on every cold start; the audio service must not import engines it cannot use."""

import json
import subprocess
import sys

HEAVY = ["torch", "whisper", "mlflow", "transformers", "diffusers", "great_expectations", "dlib", "sqlalchemy",
         "alembic", "huey", "bentos.api.surfaces", "bentos.api.http.access", "kiln.tasks.service"]


def imported_after(code: str, env_home) -> list[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120,
                         env={"KILN_HOME": str(env_home), "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_gateway_module_builds_no_routes_and_loads_no_framework_beyond_fastapi(tmp_path):
    assert imported_after("import bentos.gateway", tmp_path) == []


def test_the_gateway_app_is_assembled_once_when_the_gateway_starts(tmp_path):
    from bentos.api import app_shell, assemble
    from kiln.settings import Settings

    settings = Settings(home=tmp_path)
    app = app_shell(settings)
    shell_routes = len(app.routes)  # FastAPI's own, none of Kiln's
    assemble(app, settings)
    routes = len(app.routes)
    assert routes > shell_routes and "/predict" in app.openapi()["paths"]
    assemble(app, settings)
    assert len(app.routes) == routes  # a second call adds nothing


def test_the_audio_service_does_not_import_openai_whisper_without_a_checkpoint(tmp_path):
    code = ("from kiln.audio.speech import Speech\nfrom kiln.settings import Settings\n"
            "speech = Speech(Settings())\nassert not speech.registry.stt['whisper'].available")
    assert "whisper" not in imported_after(code, tmp_path)
    assert "torch" not in imported_after(code, tmp_path)


def test_the_model_worker_starts_without_importing_torch(tmp_path):
    """KILN_DEVICE=auto is resolved and torch's threads are set at the first load, not at start."""
    code = "import os\nfrom bentos.worker import ModelWorker\nworker = ModelWorker.inner()"
    assert "torch" not in imported_after(code + "\nworker.core.stop()", tmp_path)
    assert "torch" in imported_after(code + "\nassert worker.core.device == 'cpu'\nworker.core.stop()", tmp_path)
