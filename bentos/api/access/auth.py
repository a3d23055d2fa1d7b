"""Users and JWT sessions: seed 002 (/auth/login, /auth/refresh, /auth/logout, /users/*) and seed 000
(/auth/register, /auth/profile, /auth/generate-key)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bentos.api.http import json_guard
from bentos.api.http.access import lockout_answer
from bentos.api.http.identity import AccessDep, PrincipalDep, UserDep, client_ip
from kiln.access.errors import Forbidden, Unauthorized
from kiln.access.models import User
from kiln.errors import BadRequest, InvalidInput

router = APIRouter(tags=["auth"])


class RegisterRequest(BaseModel):
    username: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    email: str | None = Field(None, max_length=254)
    full_name: str | None = Field(None, max_length=200)


class UserOut(BaseModel):
    id: str
    username: str
    email: str | None
    full_name: str | None
    is_active: bool
    permissions: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, user: User) -> "UserOut":
        return cls(id=user.id, username=user.username, email=user.email, full_name=user.full_name,
                   is_active=user.is_active, permissions=user.permission_list, created_at=user.created_at,
                   updated_at=user.updated_at)


class UserUpdate(BaseModel):
    full_name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=254)
    password: str | None = Field(None, min_length=8, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class AccessTokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class MessageResponse(BaseModel):
    message: str


class GeneratedKey(BaseModel):
    message: str
    user_id: str
    api_key: str = Field(description="Shown once: only its hash is stored")
    permissions: list[str]
    note: str = "Store this key now: Kiln keeps only its hash and cannot show it again"


def _register(body: RegisterRequest, access: AccessDep, request: Request) -> UserOut:
    if not access.settings.registration_open:
        raise Forbidden("Registration is closed (auth is on and KILN_ALLOW_REGISTRATION is not true): ask an admin "
                        "to create your user")
    user = access.register(body.username, body.password, body.email, body.full_name)
    access.audit("user_registered", "success", f"user:{user.username}", user.id, client_ip(request),
                 request.state.request_id)
    return UserOut.of(user)


router.add_api_route("/users/register", _register, methods=["POST"], status_code=201, response_model=UserOut,
                     summary="Register a new user (seed 002)")
router.add_api_route("/auth/register", _register, methods=["POST"], status_code=201, response_model=UserOut,
                     summary="Register a new user (seed 000)")


async def _credentials(request: Request) -> tuple[str, str]:
    """username and password from a JSON body (seed 002) or an OAuth2 form (seed 000 clients, Swagger)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        data = {key: form.get(key) for key in ("username", "password")}
    else:
        try:
            data = json_guard.loads(await request.body() or b"{}")
        except json_guard.JsonTooDeep as exc:
            raise BadRequest(str(exc)) from None
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("Login body must be JSON {username, password} or a form") from None
    if not isinstance(data, dict):
        raise BadRequest("Login body must be a JSON object {username, password}")
    for name in ("username", "password"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise InvalidInput(name, "is required")
    return data["username"], data["password"]


LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "required": ["username", "password"], "properties": {
                "username": {"type": "string"}, "password": {"type": "string", "format": "password"}}}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "required": ["username", "password"],
                "properties": {"username": {"type": "string"}, "password": {"type": "string", "format": "password"}}}},
        },
    }
}


@router.post("/auth/login", response_model=TokenResponse, openapi_extra=LOGIN_BODY)
async def login(request: Request, access: AccessDep) -> TokenResponse | JSONResponse:
    username, password = await _credentials(request)
    ip, rid = client_ip(request), request.state.request_id
    limiter = request.app.state.limiter
    account = f"user:{username}"
    if limiter is not None:  # failures lock (address, account) only: the right password elsewhere gets in
        locked = await limiter.locked_out(ip or "unknown", account)
        if locked is not None:
            await run_in_threadpool(access.audit, "login", "locked", account[:69], None, ip, rid)
            return lockout_answer(request, locked)
    try:
        pair = await run_in_threadpool(access.login, username, password)
    except Unauthorized:
        await run_in_threadpool(access.audit, "login", "failure", account[:69], None, ip, rid)
        if limiter is not None:
            await limiter.failed(ip or "unknown", account)
        raise
    await run_in_threadpool(access.audit, "login", "success", f"user:{username}", None, ip, rid)
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)


@router.post("/auth/refresh", response_model=AccessTokenResponse)
def refresh(body: RefreshRequest, access: AccessDep) -> AccessTokenResponse:
    token, expires_in = access.refresh(body.refresh_token)
    return AccessTokenResponse(access_token=token, expires_in=expires_in)


@router.post("/auth/logout", response_model=MessageResponse)
def logout(principal: PrincipalDep, access: AccessDep, request: Request, body: RefreshRequest | None = None) -> MessageResponse:
    access.logout(principal, body.refresh_token if body else None)
    access.audit("logout", "success", f"{principal.kind}:{principal.name}", None, client_ip(request),
                 request.state.request_id)
    return MessageResponse(message="Successfully logged out")


@router.get("/users/me", response_model=UserOut)
def read_me(user: UserDep) -> UserOut:
    return UserOut.of(user)


@router.get("/auth/profile", response_model=UserOut)
def profile(user: UserDep) -> UserOut:
    return UserOut.of(user)


@router.put("/users/me", response_model=UserOut)
def update_me(body: UserUpdate, user: UserDep, access: AccessDep, request: Request) -> UserOut:
    updated = access.update_user(user.id, email=body.email, full_name=body.full_name, password=body.password)
    changed = sorted(body.model_dump(exclude_none=True))
    access.audit("user_updated", "success", f"user:{user.username}", user.id, client_ip(request),
                 request.state.request_id, fields=changed)
    return UserOut.of(updated)


@router.post("/auth/generate-key", response_model=GeneratedKey, status_code=201)
def generate_key(user: UserDep, access: AccessDep, request: Request) -> GeneratedKey:
    record, key = access.generate_user_key(user)
    access.audit("api_key_generated", "success", f"user:{user.username}", record.user_id, client_ip(request),
                 request.state.request_id)
    return GeneratedKey(message=f"API key generated for user '{user.username}'", user_id=record.user_id,
                        api_key=key, permissions=record.permission_list)
