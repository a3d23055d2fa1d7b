"""Command lines for `bentoml serve`: the gateway (`kiln serve`), and `kiln api` (TTSKit's `ttskit api`
options mapped onto `bentoml serve` flags, BentoML configuration and Kiln settings)."""

from __future__ import annotations

import sys
from pathlib import Path

from kiln.settings import Settings

BIN = Path(sys.executable).parent
GATEWAY_SERVICE = "bentos.gateway:Gateway"


def gateway_command(settings: Settings, host: str, port: int) -> list[str]:
    return [
        str(BIN / "bentoml"), "serve", GATEWAY_SERVICE,
        "--host", host, "--port", str(port), "--working-dir", str(settings.workspace),
    ]


UVICORN_ONLY = {
    # option: (TTSKit default, why it cannot apply)
    "timeout_keep_alive": (5, "BentoML runs uvicorn itself and does not expose its keep-alive timeout"),
    "server_header": (True, "BentoML's uvicorn always sends the Server header"),
    "date_header": (True, "BentoML's uvicorn always sends the Date header"),
}
LOG_LEVELS = {"critical", "error", "warning", "info", "debug", "trace"}


class ApiOptionError(ValueError):
    """An option of `ttskit api` that cannot apply to the BentoML gateway (the message says why)."""


def api_command(settings: Settings, *, host: str, port: int, workers: int = 1, reload: bool = False,
                log_level: str = "info", access_log: bool = True, ssl: dict | None = None,
                headers: list[str] | None = None, proxy_headers: bool = True, forwarded_allow_ips: str | None = None,
                root_path: str | None = None, **uvicorn_only) -> tuple[list[str], dict[str, str]]:
    """The `bentoml serve` command line and environment for `kiln api`'s options.

    bentoml serve flags: --host, --port, --reload, --debug/--quiet (log level). BentoML configuration
    (BENTOML_CONFIG_OVERRIDES): gateway workers, access log, ssl.*. Kiln settings (KILN_API_*) handled
    inside the app: extra headers, proxy headers, forwarded IPs, root path.
    """
    import json

    for option, value in uvicorn_only.items():
        default, why = UVICORN_ONLY[option]
        if value is not None and value != default:
            raise ApiOptionError(f"--{option.replace('_', '-')} cannot be changed: {why}.")
    level = log_level.lower()
    if level not in LOG_LEVELS:
        raise ApiOptionError(f"--log-level must be one of {', '.join(sorted(LOG_LEVELS))}")
    if workers < 1:
        raise ApiOptionError("--workers must be at least 1")
    if reload and workers > 1:
        raise ApiOptionError("--reload runs a single worker; drop --workers or --reload")
    for header in headers or []:
        name, sep, value = header.partition(":")
        if not sep or not name.strip() or not value.strip() or any(c in header for c in "\r\n"):
            raise ApiOptionError(f"--header must look like 'Name: value', got {header!r}")
    command = gateway_command(settings, host, port)
    if reload:
        command.append("--reload")
    if level in {"debug", "trace"}:
        command.append("--debug")
    elif level in {"warning", "error", "critical"}:
        command.append("--quiet")
    services: dict = {"kiln-gateway": {"workers": workers}, "logging": {"access": {"enabled": access_log}}}
    ssl = {k: v for k, v in (ssl or {}).items() if v is not None}
    if ssl:
        if "certfile" not in ssl or "keyfile" not in ssl:
            raise ApiOptionError("HTTPS needs both --ssl-certfile and --ssl-keyfile")
        for key in ("certfile", "keyfile", "ca_certs"):
            if key in ssl and not Path(ssl[key]).is_file():
                raise ApiOptionError(f"--ssl-{key.replace('_', '-')} {ssl[key]} does not exist")
        services["ssl"] = {"enabled": True, **ssl}
    env = {
        "BENTOML_CONFIG_OVERRIDES": json.dumps({"services": services}),
        "KILN_API_HEADERS": json.dumps(headers or []),
        "KILN_API_PROXY_HEADERS": "true" if proxy_headers else "false",
        "KILN_API_FORWARDED_ALLOW_IPS": forwarded_allow_ips or "127.0.0.1",
        "KILN_API_ROOT_PATH": root_path or "",
        "KILN_API_ACCESS_LOG": "true" if access_log else "false",  # Kiln's own line per request (BentoML's is off)
    }
    return command, env
