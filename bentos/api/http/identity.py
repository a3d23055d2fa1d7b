"""Dependencies for routes that act on the caller: the access-control service, the principal, the user."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from kiln.access.errors import Forbidden, Unauthorized
from kiln.access.models import User
from kiln.access.service import AccessControl, Principal


async def access_control(request: Request) -> AccessControl:
    return request.app.state.access


async def current_principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise Unauthorized("Authentication required: send Authorization: Bearer <token or API key>, X-API-Key, or Basic")
    return principal


AccessDep = Annotated[AccessControl, Depends(access_control)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]


def current_user(principal: PrincipalDep, access: AccessDep) -> User:  # sync: a database read, run in a thread
    if principal.user_id is None:
        raise Forbidden("This route needs a user account: log in (JWT or Basic) or use a key a user generated")
    return access.get_user(principal.user_id)


UserDep = Annotated[User, Depends(current_user)]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def owner_of(principal: Principal | None) -> str | None:
    """Whose records a caller's tasks and files are: a user, or an API key that no user owns."""
    if principal is None:
        return None
    return principal.user_id or f"key:{principal.key_id or principal.name}"


def sees_all(principal: Principal | None, enable_auth: bool) -> bool:
    """Admins see everyone's tasks and files; with auth off, so does everyone."""
    return not enable_auth or (principal is not None and principal.can("admin"))


@dataclass(frozen=True)
class Caller:
    principal: Principal | None
    owner_id: str | None
    see_all: bool


async def current_caller(request: Request) -> Caller:
    principal = getattr(request.state, "principal", None)
    return Caller(principal, owner_of(principal), sees_all(principal, request.app.state.access.settings.enable_auth))


CallerDep = Annotated[Caller, Depends(current_caller)]
