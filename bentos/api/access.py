"""The one place the permission table is enforced (pure ASGI middleware, for every route of the app):
find the route's template, resolve the caller's credentials, answer 401/403 by the table, count the
request against its rate limit group, and audit admin actions."""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Mount, compile_path, get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bentos.api.errors import error_response
from bentos.api.permissions import MISSING, RULES, SERVER_RULES, Access, Rule, rule_for
from kiln.access.errors import Unauthorized
from kiln.access.ratelimit import Decision, RateLimiter
from kiln.access.service import AccessControl, Principal

log = logging.getLogger("kiln.access")


class RouteIndex:
    """Every route of the app with its full path template (FastAPI 0.165 nests included routers, so
    ``app.routes`` alone does not list them), compiled once and rebuilt when routes are added."""

    def __init__(self) -> None:
        self._size = -1
        self._entries: list[tuple[re.Pattern, frozenset[str] | None, str]] = []

    def entries(self, app: Any) -> list[tuple[re.Pattern, frozenset[str] | None, str]]:
        routes = list(getattr(app, "routes", []))
        if len(routes) != self._size:
            entries = []
            for route in all_routes(routes):
                if isinstance(route, Mount):
                    template = route.path.rstrip("/") + "/{path:path}"
                    entries.append((compile_path(template)[0], None, template))
                elif getattr(route, "path", None):
                    methods = getattr(route, "methods", None)
                    entries.append((compile_path(route.path)[0], frozenset(methods) if methods else None, route.path))
            self._entries, self._size = entries, len(routes)
        return self._entries

    def template(self, scope: Scope) -> str | None:
        """The path template of the route that will serve ``scope`` (None: a 404 or 405 follows)."""
        path = get_route_path(scope)
        for pattern, methods, template in self.entries(scope.get("app")):
            if pattern.match(path) and (methods is None or scope["method"] in methods):
                return template
        return None


def all_routes(routes: list) -> list:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before nested included routers
        return routes
    return [context.original_route if isinstance(context.original_route, Mount) else context
            for context in iter_route_contexts(routes)]


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


class AccessMiddleware:
    """Reads the service and the limiter from ``app.state`` (``access``, ``limiter``) set by create_app()."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.routes = RouteIndex()
        self._warned: set[str] = set()

    rules = RULES

    def api_state(self, scope: Scope) -> Any:
        """Where ``access`` and ``limiter`` live: the API app's state."""
        return scope["app"].state

    def lookup(self, scope: Scope) -> tuple[str, Rule] | None:
        """(route template, rule) for the route that will serve ``scope``; None: not this table's."""
        template = self.routes.template(scope)
        if template is None:
            return None
        return template, rule_for(scope["method"], template, self.rules) or self._missing(scope["method"], template)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = self.lookup(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        template, rule = found
        request = Request(scope)
        state = scope.setdefault("state", {})
        api_state = self.api_state(scope)
        access: AccessControl = api_state.access
        limiter: RateLimiter | None = api_state.limiter
        if not access.ready:
            await run_in_threadpool(access.start)

        principal, problem = await self._principal(access, request)
        state["principal"] = principal
        if problem and limiter is not None:  # bad credentials count as guesses, per client IP, on any route
            guesses = await limiter.hit("auth", f"ip:{client_ip(scope)}")
            if guesses is not None and not guesses.allowed:
                await self._too_many(request, guesses, "auth")(scope, receive, send)
                return
        if access.settings.enable_auth and rule.access != Access.PUBLIC:
            denied, audit = self._deny(request, rule, principal, problem)
            if denied is not None:
                await denied(scope, receive, send)
                if audit:  # after the answer, so a flood of bad requests stays cheap to answer
                    event, outcome, details = audit
                    await self._audit(access, request, event, outcome, principal, f"{scope['method']} {template}",
                                      **details)
                return

        decision = await self._count(limiter, rule, principal, scope)
        if decision is not None and not decision.allowed:
            await self._too_many(request, decision, rule.group)(scope, receive, send)
            return

        status = 500

        async def send_with_limits(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if decision is not None:
                    message["headers"] = list(message.get("headers", [])) + [
                        (k.lower().encode(), v.encode()) for k, v in decision.headers().items()
                    ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_limits)
        finally:
            if rule.access == Access.ADMIN:
                await self._audit(access, request, "admin_action", "success" if status < 400 else "failure", principal,
                                  f"{scope['method']} {template}", status=status)

    @staticmethod
    def _too_many(request: Request, decision: Decision, group: str):
        headers = {**decision.headers(), "Retry-After": str(decision.retry_after)}
        message = f"Rate limit exceeded: {decision.limit} requests per window for {group} requests"
        return error_response(request, 429, message, {"retry_after": decision.retry_after}, headers=headers)

    async def _principal(self, access: AccessControl, request: Request) -> tuple[Principal | None, str | None]:
        authorization = request.headers.get("authorization")
        api_key = request.headers.get("x-api-key")
        if not authorization and not api_key:
            return None, None
        try:
            return await run_in_threadpool(access.authenticate, authorization, api_key), None
        except Unauthorized as exc:
            return None, exc.message

    @staticmethod
    def _deny(request: Request, rule: Rule, principal: Principal | None, problem: str | None):
        """(the 401/403 answer, the audit event) for a caller the table does not let in; (None, None) if it does."""
        if principal is None:
            message = problem or "Authentication required: send Authorization: Bearer <token or API key>, X-API-Key, or Basic"
            audit = ("authentication_failed", "failure", {"reason": problem}) if problem else None
            return error_response(request, 401, message, headers={"WWW-Authenticate": "Bearer"}), audit
        if rule.permission and not principal.can(rule.permission):
            answer = error_response(
                request, 403, f"Insufficient permissions: this route needs '{rule.permission}'",
                {"required": rule.permission, "granted": list(principal.permissions)},
            )
            return answer, ("access_denied", "denied", {"needed": rule.permission})
        return None, None

    async def _count(self, limiter: RateLimiter | None, rule: Rule, principal: Principal | None,
                     scope: Scope) -> Decision | None:
        if limiter is None or rule.group is None:
            return None
        identity = f"ip:{client_ip(scope)}" if rule.group == "auth" or principal is None else principal.rate_identity
        return await limiter.hit(rule.group, identity)

    def _missing(self, method: str, template: str) -> Rule:
        key = f"{method} {template}"
        if key not in self._warned:
            self._warned.add(key)
            log.error("Route %s has no entry in bentos/api/permissions.py: treated as admin-only", key)
        return MISSING

    @staticmethod
    async def _audit(access: AccessControl, request: Request, event: str, outcome: str,
                     principal: Principal | None, target: str, **details: Any) -> None:
        actor = f"{principal.kind}:{principal.name}" if principal else None
        await run_in_threadpool(
            access.audit, event, outcome, actor, target, client_ip(request.scope),
            getattr(request.state, "request_id", None), **details,
        )


class ServerRoutesGuard(AccessMiddleware):
    """The same checks for BentoML's own routes (``/metrics``, ``/livez``, ``/docs.json``, its Swagger
    index...), which the BentoML app answers before the API app, and its AccessMiddleware, are reached.
    Added to the gateway service with ``add_asgi_middleware``; requests for the API app pass through."""

    rules = SERVER_RULES

    def __init__(self, app: ASGIApp, api: Any):
        super().__init__(app)
        self.api = api

    def api_state(self, scope: Scope) -> Any:
        return self.api.state

    def lookup(self, scope: Scope) -> tuple[str, Rule] | None:
        # BentoML mounts the API app at "/" as a passive mount: any other route that matches wins,
        # wherever it sits in the route list; what only the mount matches is the API app's to decide.
        path = get_route_path(scope)
        for pattern, methods, template in self.routes.entries(scope.get("app")):
            if template != "/{path:path}" and pattern.match(path) and (methods is None or scope["method"] in methods):
                return template, rule_for(scope["method"], template, self.rules) or self._missing(scope["method"], template)
        return None


SECURITY_SCHEMES = {
    "BearerAuth": {"type": "http", "scheme": "bearer", "description": "A JWT from /auth/login, or an API key"},
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "BasicAuth": {"type": "http", "scheme": "basic", "description": "A user's username and password"},
}


def document_security(app: Any) -> None:
    """Show the permission table in the OpenAPI spec (and Swagger's Authorize button): every non-public
    operation lists the accepted credentials and carries ``x-kiln-permission``."""
    generate = app.openapi

    def openapi() -> dict:
        schema = generate()
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                rule = rule_for(method.upper(), path)
                if rule is None or rule.access == Access.PUBLIC:
                    continue
                operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
                operation["x-kiln-permission"] = rule.access.value
        return schema

    app.openapi = openapi
