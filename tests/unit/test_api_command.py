"""`kiln api`: TTSKit's `ttskit api` options mapped to bentoml serve flags, BentoML config and Kiln settings."""

import json

import pytest

from kiln.integrations.bentoml_serve import ApiOptionError, api_command
from kiln.settings import get_settings


def build(**options):
    defaults = {"host": "127.0.0.1", "port": 8123}
    return api_command(get_settings(), **{**defaults, **options})


def test_defaults_serve_the_gateway():
    command, env = build()
    assert command[1:4] == ["serve", "bentos.gateway:Gateway", "--host"] and "8123" in command
    overrides = json.loads(env["BENTOML_CONFIG_OVERRIDES"])["services"]
    assert overrides["kiln-gateway"]["workers"] == 1 and overrides["logging"]["access"]["enabled"] is True
    assert "ssl" not in overrides and env["KILN_API_PROXY_HEADERS"] == "true"


def test_options_map_to_flags_config_and_settings(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("x"), key.write_text("y")
    command, env = build(workers=4, log_level="debug", access_log=False, headers=["X-API-Version: v1"],
                         ssl={"certfile": str(cert), "keyfile": str(key), "ciphers": "TLSv1.2"},
                         forwarded_allow_ips="*", root_path="/tts")
    assert "--debug" in command
    services = json.loads(env["BENTOML_CONFIG_OVERRIDES"])["services"]
    assert services["kiln-gateway"]["workers"] == 4 and services["logging"]["access"]["enabled"] is False
    assert services["ssl"] == {"enabled": True, "certfile": str(cert), "keyfile": str(key), "ciphers": "TLSv1.2"}
    assert json.loads(env["KILN_API_HEADERS"]) == ["X-API-Version: v1"]
    assert env["KILN_API_FORWARDED_ALLOW_IPS"] == "*" and env["KILN_API_ROOT_PATH"] == "/tts"
    assert env["KILN_API_ACCESS_LOG"] == "false"
    assert "--quiet" in build(log_level="warning")[0] and "--reload" in build(reload=True)[0]


@pytest.mark.parametrize(
    "options, words",
    [
        ({"timeout_keep_alive": 30}, "keep-alive"),
        ({"server_header": False}, "Server header"),
        ({"date_header": False}, "Date header"),
        ({"log_level": "loud"}, "--log-level"),
        ({"workers": 0}, "--workers"),
        ({"reload": True, "workers": 2}, "--reload"),
        ({"headers": ["no colon"]}, "--header"),
        ({"ssl": {"certfile": "/nope/cert.pem"}}, "both"),
        ({"ssl": {"certfile": "/nope/cert.pem", "keyfile": "/nope/key.pem"}}, "does not exist"),
    ],
)
def test_options_that_cannot_apply_are_refused(options, words):
    with pytest.raises(ApiOptionError, match=words):
        build(**options)


def test_cli_refuses_clearly():
    from typer.testing import CliRunner

    from kiln.cli import app

    result = CliRunner().invoke(app, ["api", "--timeout-keep-alive", "30"])
    assert result.exit_code == 2 and "keep-alive" in result.output
