"""Dependencies for routes that act on the caller: the access-control service, the principal, the user."""

from __future__ import annotations

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
