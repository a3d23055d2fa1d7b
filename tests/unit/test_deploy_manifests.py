"""The Kubernetes manifests of the shared profile are valid Kubernetes objects (strict: no unknown fields),
their ConfigMap agrees with the shared profile's settings, and every Kiln container runs a real command."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kiln.settings import Settings

FOLDER = Path(__file__).resolve().parents[2] / "assets" / "deploy" / "kubernetes"


def documents():
    for name in yaml.safe_load((FOLDER / "kustomization.yaml").read_text())["resources"]:
        for document in yaml.safe_load_all((FOLDER / name).read_text()):
            if document:
                yield name, document


@pytest.mark.parametrize("name, document", list(documents()), ids=lambda v: v if isinstance(v, str) else v["metadata"]["name"])
def test_each_object_validates_against_the_kubernetes_schema(name, document):
    kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def test_the_configmap_is_the_shared_profile():
    profile = {}
    for line in (FOLDER.parents[1] / "profiles" / "shared.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            profile[key] = value
    config = next(d for _, d in documents() if d["kind"] == "ConfigMap")["data"]
    assert set(profile) - {"KILN_SHARED_DIR"} <= set(config), set(profile) - set(config)
    settings = Settings(**{k.removeprefix("KILN_").lower(): v for k, v in config.items()})
    assert settings.task_queue == "redis" and settings.shared_dir == Path("/srv/kiln") and settings.enable_auth


def test_kiln_containers_run_kiln_commands():
    from typer.main import get_command

    from kiln.cli import app

    commands = set(get_command(app).commands)
    for _, document in documents():
        for container in document.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            if container["image"].startswith("kiln"):
                assert container["command"][0] == "kiln" and container["command"][1] in commands, container["command"]
