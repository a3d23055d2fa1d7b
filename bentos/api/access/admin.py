"""TTSKit's admin API (seed 003): API key CRUD, the caller's identity, the audit log, and rate limit usage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from bentos.api.http.identity import AccessDep, PrincipalDep, client_ip
from kiln.access.models import ApiKey
from kiln.access.ratelimit import GROUPS
from kiln.access.service import Principal

router = APIRouter(prefix="/api/v1", tags=["admin"])

Permission = str


class KeyCreate(BaseModel):
    user_id: str = Field(min_length=1, max_length=64)
    api_key: str | None = Field(None, min_length=8, max_length=512, description="Omit to have Kiln generate one")
    permissions: list[Permission] = Field(default_factory=lambda: ["read", "write"])


class KeyUpdate(BaseModel):
    api_key: str | None = Field(None, min_length=8, max_length=512)
    permissions: list[Permission] | None = None


def describe(record: ApiKey) -> dict[str, Any]:
    return {
        "user_id": record.user_id,
        "permissions": record.permission_list,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "last_used_at": record.last_used_at.isoformat() if record.last_used_at else None,
        "api_key": record.key_hint,
        "source": record.source,
    }


def actor(principal: Principal | None) -> str | None:
    return f"{principal.kind}:{principal.name}" if principal else None


@router.get("/admin/api-keys")
def list_keys(access: AccessDep) -> dict[str, dict]:
    return {record.user_id: describe(record) for record in access.list_keys()}


@router.post("/admin/api-keys", status_code=201)
def create_key(body: KeyCreate, access: AccessDep, request: Request) -> dict:
    record, key = access.create_key(body.user_id, body.permissions, body.api_key)
    access.audit("api_key_created", "success", actor(request.state.principal), body.user_id, client_ip(request),
                 request.state.request_id, permissions=record.permission_list)
    answer = {
        "message": f"API key created successfully for user '{record.user_id}'",
        "user_id": record.user_id,
        "permissions": record.permission_list,
        "note": "Kiln stores only the key's hash in its database",
    }
    if body.api_key is None:  # a generated key is shown this once
        answer["api_key"] = key
    return answer


@router.put("/admin/api-keys/{user_id}")
def update_key(user_id: str, body: KeyUpdate, access: AccessDep, request: Request) -> dict:
    record = access.update_key(user_id, body.api_key, body.permissions)
    access.audit("api_key_updated", "success", actor(request.state.principal), user_id, client_ip(request),
                 request.state.request_id, permissions=record.permission_list, key_changed=body.api_key is not None)
    return {
        "message": f"API key updated successfully for user '{user_id}'",
        "user_id": user_id,
        "permissions": record.permission_list,
        "note": "Kiln stores only the key's hash in its database",
    }


@router.delete("/admin/api-keys/{user_id}")
def delete_key(user_id: str, access: AccessDep, request: Request) -> dict:
    access.delete_key(user_id)
    access.audit("api_key_deleted", "success", actor(request.state.principal), user_id, client_ip(request),
                 request.state.request_id)
    return {"message": f"API key deleted successfully for user '{user_id}'", "note": "The key no longer authenticates"}


@router.get("/admin/users/me")
def whoami(principal: PrincipalDep) -> dict:
    return {
        "user_id": principal.name,
        "kind": principal.kind,
        "permissions": list(principal.permissions),
        "api_key": principal.key_hint,
    }


@router.get("/admin/audit")
def audit_events(access: AccessDep, limit: int = Query(100, ge=1, le=1000)) -> dict:
    events = access.audit_events(limit)
    return {
        "events": [
            {"id": e.id, "at": e.at.isoformat(), "event": e.event, "outcome": e.outcome, "actor": e.actor,
             "target": e.target, "client_ip": e.client_ip, "request_id": e.request_id, "details": e.details}
            for e in events
        ],
        "total": len(events),
    }


@router.get("/rate-limit")
async def rate_limit(request: Request) -> dict:
    from bentos.api.surfaces import permission_rules

    settings = request.app.state.access.settings
    limiter = request.app.state.limiter
    principal = getattr(request.state, "principal", None)
    ip = client_ip(request) or "unknown"
    identity = principal.rate_identity if principal else f"ip:{ip}"
    answer: dict[str, Any] = {
        "enabled": limiter is not None,
        "storage": limiter.backend if limiter else None,
        "strategy": "moving-window",
        "scope": "per API key, per user, else per client IP; login/register/refresh per client IP",
        "limits": {"generation": settings.rate_limit_generation, "status": settings.rate_limit_status,
                   "auth": settings.rate_limit_auth, "devices": settings.rate_limit_devices,
                   "device_inference (per device)": settings.rate_limit_device_inference},
        "exempt": sorted(key for key, rule in permission_rules().items() if rule.group is None),
        "client": {"identity": identity.split(":", 1)[0], "name": principal.name if principal else ip},
    }
    if limiter is not None:
        answer["usage"] = {
            group: await limiter.usage(group, f"ip:{ip}" if group == "auth" else identity) for group in GROUPS
        }
    return answer
