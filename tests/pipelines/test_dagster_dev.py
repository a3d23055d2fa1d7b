"""`dagster dev` starts on the workspace and its GraphQL API lists the asset graph."""

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kiln.settings import get_settings
from tests.conftest import free_port
from tests.servers import start, stop

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_dagster_dev_serves_the_asset_graph(kiln_home: Path, tmp_path: Path):
    settings = get_settings()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(settings.workspace), os.environ.get("PYTHONPATH", "")])}
    command = [str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(settings.workspace / "workspace.yaml"),
               "-h", "127.0.0.1", "-p", str(port)]
    process = start(command, tmp_path / "dagster.log", env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        nodes, deadline = None, time.time() + 150
        while time.time() < deadline and process.poll() is None:
            try:
                answer = graphql(url, "{ assetNodes { assetKey { path } } }")
                nodes = answer.get("data", {}).get("assetNodes")
                if nodes:
                    break
            except OSError:
                pass
            time.sleep(2)
        assert nodes, f"dagster dev did not serve the asset graph:\n{(tmp_path / 'dagster.log').read_text()[-3000:]}"
        keys = {"/".join(node["assetKey"]["path"]) for node in nodes}
        assert {"raw_model", "sentiment_dataset", "finetuned_model", "optimized_model", "evaluation",
                "evaluation_report", "registered_model", "bento_model", "bento"} <= keys
    finally:
        stop(process)
