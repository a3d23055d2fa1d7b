"""Access control core: users, JWT sessions, API keys, rate limits, audit (no web framework here)."""

from __future__ import annotations

import ipaddress
import logging

from kiln.settings import Settings

log = logging.getLogger("kiln.access")

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_exposed(settings: Settings, host: str | None = None) -> bool:
    """Log a loud warning when the API binds beyond loopback with authentication off. True if it warned."""
    host = host or settings.host
    if settings.enable_auth or is_loopback(host):
        return False
    log.warning(
        "\n" + "!" * 78 + "\n"
        "!! Kiln's API binds %s with authentication OFF: anyone who reaches it can predict, manage\n"
        "!! API keys and users, and delete logs. Set KILN_ENABLE_AUTH=true and KILN_API_KEYS (or\n"
        "!! KILN_ADMIN_PASSWORD), or bind 127.0.0.1.\n" + "!" * 78,
        host,
    )
    return True
