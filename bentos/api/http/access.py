"""The one place the permission table is enforced (pure ASGI middleware, for every route of the app):
find the route's template, resolve the caller's credentials, answer 401/403 by the table, count the
request against its rate limit group, and audit admin actions.

``BentoRoutesLayer`` does the same for BentoML's own routes (probes, ``/metrics``), which BentoML's app
answers before the API app is reached, and puts Kiln's HTTP layer (headers, request id, CORS, JSON
errors) around them, so every response of the server passes through it.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bentos.api.http.errors import error_response, not_found_or_wrong_method
from bentos.api.http.permissions import MISSING, SERVER_RULES, Access, Rule, Rules, rule_for
from bentos.api.http.routes import RouteIndex
from kiln.access.errors import Unauthorized
from kiln.access.ratelimit import Decision, RateLimiter, governing
from kiln.access.service import AccessControl, Principal

log = logging.getLogger("kiln.access")

CREDENTIALS_HINT = "send Authorization: Bearer <token or API key>, X-API-Key, or Basic"
LIMIT_HEADERS = (b"x-ratelimit-limit", b"x-ratelimit-remaining", b"x-ratelimit-reset")


def counted_also(request: Request, decision: Decision | None) -> None:
    """A limit a route counts itself (seed 004's inference per device), for the headers: the response carries
    one set of X-RateLimit headers, the governing one of the request's counts (see ``governing``)."""
    if decision is not None:
        request.state.rate_limits = [*getattr(request.state, "rate_limits", ()), decision]


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def credential_account(authorization: str | None, api_key: str | None) -> str:
    """The account a request's credentials claim, for the lockout: "user:<name>" for Basic credentials;
    keys and tokens name no account before they are verified, so they share the "key" bucket."""
    if authorization and not api_key:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                username, sep, _ = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return "key"
            if sep:
                return f"user:{username}"
    return "key"


def lockout_answer(request: Request, decision: Decision):
    headers = {**decision.headers(), "Retry-After": str(decision.retry_after)}
    message = (f"Too many failed credentials for this account from your address ({decision.limit} per window, "
               f"KILN_RATE_LIMIT_AUTH): locked out for {decision.retry_after} s")
    return error_response(request, 429, message, {"retry_after": decision.retry_after}, headers=headers)


def anonymous_allowed(rule: Rule, auth_enabled: bool, settings: Any) -> bool:
    """Whether a caller without credentials may use a route under ``rule``."""
    if rule.access == Access.PUBLIC:
        return True
    if not auth_enabled:
        return rule.access != Access.ADMIN  # admin routes never answer anonymous callers
    return rule.optional_unless is not None and not getattr(settings, rule.optional_unless)


class AccessMiddleware:
    """Reads the service and the limiter from the API app's state (``access``, ``limiter``)."""

    def __init__(self, app: ASGIApp, rules: Rules):
        self.app = app
        self.rules = rules
        self.routes = RouteIndex()
        self._warned: set[str] = set()

    def api_state(self, scope: Scope) -> Any:
        return scope["app"].state

    def lookup(self, scope: Scope) -> tuple[str, Rule] | None:
        """(route template, rule) for the route that will serve ``scope``; None: not this table's."""
        found = self.routes.route(scope)
        if found is None:
            return None
        methods, template = found
        # Kiln's mounts serve files (read-only): the GET line covers them, and they answer 405 to writes.
        method = "GET" if methods is None else scope["method"]
        return template, rule_for(method, template, self.rules) or self._missing(method, template)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = self.lookup(scope)
        if found is None:  # a 404 or 405 follows
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

        account = credential_account(request.headers.get("authorization"), request.headers.get("x-api-key"))
        if account.startswith("user:") and limiter is not None:  # a password: a locked pair is not even checked
            locked = await limiter.locked_out(client_ip(scope), account)
            if locked is not None:
                await lockout_answer(request, locked)(scope, receive, send)
                return
        principal, problem = await self._principal(access, request)
        state["principal"] = principal
        if problem and limiter is not None:  # bad credentials count as guesses, per (client IP, account), any route
            guesses = await limiter.failed(client_ip(scope), account)
            if guesses is not None and not guesses.allowed:
                await lockout_answer(request, guesses)(scope, receive, send)
                return
        settings = access.settings
        if principal is not None or problem or not anonymous_allowed(rule, settings.enable_auth, settings):
            denied, audit = self._deny(request, rule, principal, problem, settings.enable_auth)
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
                chosen = governing([decision, *state.get("rate_limits", ())])
                if chosen is not None:  # one set: a route's own limit's headers are replaced, never doubled
                    kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in LIMIT_HEADERS]
                    message["headers"] = kept + [(k.lower().encode(), v.encode()) for k, v in chosen.headers().items()]
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
    def _deny(request: Request, rule: Rule, principal: Principal | None, problem: str | None, auth_enabled: bool):
        """(the 401/403 answer, the audit event) for a caller the table does not let in; (None, None) if it does.

        With auth off only admin routes check credentials; a bad credential elsewhere is ignored, as before."""
        if rule.access == Access.PUBLIC or (not auth_enabled and rule.access != Access.ADMIN):
            return None, None
        if principal is None:
            if rule.access == Access.ADMIN and not auth_enabled:
                message = problem or ("Admin routes need an admin credential even with KILN_ENABLE_AUTH=false: "
                                      f"{CREDENTIALS_HINT} (the local admin key is in KILN_HOME/admin.key)")
            else:
                message = problem or f"Authentication required: {CREDENTIALS_HINT}"
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
            log.error("Route %s has no line in the permission table (bentos/api/*/permissions.py): treated as admin-only", key)
        return MISSING

    @staticmethod
    async def _audit(access: AccessControl, request: Request, event: str, outcome: str,
                     principal: Principal | None, target: str, **details: Any) -> None:
        actor = f"{principal.kind}:{principal.name}" if principal else None
        await run_in_threadpool(
            access.audit, event, outcome, actor, target, client_ip(request.scope),
            getattr(request.state, "request_id", None), **details,
        )


def bento_routes(app: Any, index: RouteIndex) -> list[tuple[Any, frozenset[str] | None, str]]:
    """BentoML's routes that its router reaches before the mounted API app (whose fallback route
    claims everything else): the probes, /metrics, /schema.json."""
    owned = []
    for entry in index.entries(app):
        if entry[2] == "/{path:path}":  # the passive mount of the API app
            break
        owned.append(entry)
    return owned


class BentoRoutesLayer(AccessMiddleware):
    """Kiln's HTTP layer and the permission checks for BentoML's own routes. Added to the gateway with
    ``add_asgi_middleware``; requests for the API app pass through untouched (it has the layer itself)."""

    def __init__(self, app: ASGIApp, api: Any):
        super().__init__(app, SERVER_RULES)
        self.api = api
        self._guarded: ASGIApp | None = None  # built on first use: the settings live on the API app

    def api_state(self, scope: Scope) -> Any:
        return self.api.state

    def lookup(self, scope: Scope) -> tuple[str, Rule] | None:
        path = get_route_path(scope)
        for pattern, methods, template in bento_routes(scope.get("app"), self.routes):
            if pattern.match(path) and (methods is None or scope["method"] in methods):
                return template, rule_for(scope["method"], template, self.rules) or self._missing(scope["method"], template)
        return None

    def wrong_method(self, scope: Scope) -> set[str]:
        path = get_route_path(scope)
        allowed: set[str] = set()
        for pattern, methods, _ in bento_routes(scope.get("app"), self.routes):
            if pattern.match(path):
                allowed |= methods or {"GET", "HEAD"}
        return allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.lookup(scope) is None:
            allowed = self.wrong_method(scope)
            if not allowed:  # the API app's request: it has its own layer
                await self.app(scope, receive, send)
                return
            await self.layered(self._answer_405(allowed))(scope, receive, send)
            return
        if self._guarded is None:
            self._guarded = self.layered(super().__call__)
        await self._guarded(scope, receive, send)

    def _answer_405(self, allowed: set[str]) -> ASGIApp:
        async def answer(scope: Scope, receive: Receive, send: Send) -> None:
            await not_found_or_wrong_method(Request(scope, receive), allowed)(scope, receive, send)

        return answer

    def layered(self, inner: ASGIApp) -> ASGIApp:
        from bentos.api.http.layer import wrap

        return wrap(inner, self.api.state.access.settings, self.api.state.traffic)
