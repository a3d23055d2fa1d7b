"""The access log: one structured line per request, unless `kiln api --no-access-log` (KILN_API_ACCESS_LOG)."""

import logging

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from bentos.api.http import layer
from bentos.api.http.request_log import Traffic
from kiln.settings import Settings


def client_for(tmp_path, **settings) -> tuple[TestClient, Traffic]:
    app = FastAPI()

    @app.get("/ping")
    def ping():
        return {"ok": True}

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    traffic = Traffic()
    layer.install(app, Settings(home=tmp_path, **settings), traffic)
    return TestClient(app, raise_server_exceptions=False), traffic


@pytest.mark.parametrize("enabled", [True, False])
def test_one_line_per_request_unless_turned_off(tmp_path, caplog, enabled):
    client, traffic = client_for(tmp_path, api_access_log=enabled)
    with caplog.at_level(logging.INFO, logger="kiln.access"):
        assert client.get("/ping", headers={"X-Request-ID": "r-1"}).status_code == 200
        assert client.get("/boom").status_code == 500
    lines = [r for r in caplog.records if r.name == "kiln.access"]
    if enabled:
        assert [(r.path, r.status) for r in lines] == [("/ping", 200), ("/boom", 500)]
        assert lines[0].request_id == "r-1" and lines[0].duration_ms >= 0
    else:
        assert lines == []
    summary = traffic.window.summary()
    assert traffic.in_flight == 0 and summary["requests"] == 2 and summary["errors"] == 1  # kept either way
