"""Credentials for websockets, which the HTTP access middleware does not see: a JWT or API key in the
``token`` (or ``api_key``) query parameter, as browsers cannot set headers on a websocket, or the usual
``Authorization`` / ``X-API-Key`` headers. With auth on, a connection without a valid credential is
closed with code 4401 before it is accepted."""

from __future__ import annotations

from fastapi import WebSocket
from starlette.concurrency import run_in_threadpool

from kiln.access.errors import Unauthorized
from kiln.access.service import AccessControl, Principal

UNAUTHORIZED = 4401  # 4000 + the HTTP status, as the events document's clients expect
POLICY_VIOLATION = 1008


class Refused(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


async def websocket_principal(websocket: WebSocket) -> Principal | None:
    """The caller of ``websocket``: None when auth is off and no credential came; raises Refused when
    auth is on and the credential is missing, invalid or lacks the permission of the route's line in
    the permission table (``WEBSOCKET /path``)."""
    from bentos.api.http.permissions import rule_for
    from bentos.api.surfaces import permission_rules

    route = websocket.scope.get("route")
    rule = rule_for("WEBSOCKET", getattr(route, "path", websocket.url.path), permission_rules())
    permission = (rule.permission if rule else "admin") or "read"  # a stream without a line: admin only
    access: AccessControl = websocket.app.state.access
    if not access.ready:
        await run_in_threadpool(access.start)
    token = websocket.query_params.get("token") or websocket.query_params.get("api_key")
    authorization = websocket.headers.get("authorization") or (f"Bearer {token}" if token else None)
    api_key = websocket.headers.get("x-api-key")
    principal = None
    if authorization or api_key:
        try:
            principal = await run_in_threadpool(access.authenticate, authorization, api_key)
        except Unauthorized as exc:
            if access.settings.enable_auth:
                raise Refused(UNAUTHORIZED, exc.message) from None
    if access.settings.enable_auth:
        if principal is None:
            raise Refused(UNAUTHORIZED, "Authentication required: ?token=<JWT or API key>")
        if not principal.can(permission):
            raise Refused(POLICY_VIOLATION, f"This stream needs '{permission}' permission")
    return principal


async def refuse(websocket: WebSocket, refused: Refused) -> None:
    await websocket.close(code=refused.code, reason=refused.reason[:120])
