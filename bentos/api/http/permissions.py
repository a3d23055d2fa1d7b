"""The permission table's vocabulary. Each surface writes its own lines ("METHOD /path/template" ->
who may call it and which rate limit group counts it) in its ``permissions.py``; ``bentos/api/surfaces.py``
joins them into the one table that ``http/access.py`` enforces for every request. The test
tests/bentos/test_auth_matrix.py fails for any route without a line.

Levels:
- PUBLIC: no credentials (health, docs, login/register/refresh).
- AUTHENTICATED: any valid credential; the route acts on the caller (profile, logout, own key).
- READ: GET info and status.
- WRITE: predict, synthesize, transcribe, generate, cache clear, uploads (includes READ).
- ADMIN: API keys, users, audit, log deletion, server optimize, scaling, model unload (includes WRITE).

With KILN_ENABLE_AUTH=false every route but ADMIN is open; ADMIN routes never answer an anonymous
caller (Kiln writes a local admin key on first start, see kiln/access/service.py). With auth on, a
rule marked ``optional`` follows documents that say "Authentication: Optional" (TTSKit): anonymous
callers are served under the per-IP rate limit unless the surface's setting asks for credentials.

Rate limit groups (KILN_RATE_LIMIT_*): "generation" (write work), "status" (reads, admin), "auth" (per
client IP, against password guessing), None (not limited: /health and docs). HEAD uses the GET line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class Access(str, Enum):
    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


@dataclass(frozen=True)
class Rule:
    access: Access
    group: str | None
    optional_unless: str | None = None  # a Settings field: when it is false, anonymous callers pass (auth on)

    @property
    def permission(self) -> str | None:
        """The key permission this rule needs, if any."""
        return self.access.value if self.access in (Access.READ, Access.WRITE, Access.ADMIN) else None


def public(group: str | None = None) -> Rule:
    return Rule(Access.PUBLIC, group)


def authenticated() -> Rule:
    return Rule(Access.AUTHENTICATED, "status")


def read() -> Rule:
    return Rule(Access.READ, "status")


def write() -> Rule:
    return Rule(Access.WRITE, "generation")


def admin() -> Rule:
    return Rule(Access.ADMIN, "status")


def optional(rule: Rule, unless: str) -> Rule:
    """``rule`` for callers with credentials; anonymous callers pass while setting ``unless`` is false."""
    return replace(rule, optional_unless=unless)


# Fails closed: a route missing from the table is treated as admin-only (and logged) until it gets its line.
MISSING = admin()

Rules = dict[str, Rule]

# The API docs (http/docs.py).
DOCS_RULES: Rules = {
    "GET /docs": public(),
    "GET /docs/oauth2-redirect": public(),
    "GET /docs/assets/{path:path}": public(),
    "GET /redoc": public(),
    "GET /openapi.json": public(),
    "GET /docs.json": public(),  # BentoML's name for the spec: the same document
}

# BentoML's own routes: its app answers these before the API app, so they have their own table, enforced
# by BentoRoutesLayer (http/access.py) with the same checks.
SERVER_RULES: Rules = {
    "GET /livez": public(),
    "GET /readyz": public(),
    "GET /healthz": public(),
    "GET /schema.json": public(),
    "GET /metrics": read(),  # Prometheus: request counts and latencies per route
}


def rule_for(method: str, path: str, rules: Rules) -> Rule | None:
    method = "GET" if method == "HEAD" else method
    return rules.get(f"{method} {path}")
