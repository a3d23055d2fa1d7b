"""Error responses in the spec: every operation declares the errors it can answer, each with the body
schema of the API document that owns its path (``formats.py``), and a ``default`` for the rest. FastAPI's
own 422 schema (``HTTPValidationError``) is replaced: Kiln never answers in that shape."""

from __future__ import annotations

from typing import Any

from bentos.api.http import formats
from bentos.api.http.errors import ErrorFormats
from bentos.api.http.permissions import Access, Rules, rule_for

REQUEST_ID = {"type": "string", "description": "The request's id (also the X-Request-ID header)"}
ANY = {"description": "More about the error (fields, allowed values, limits...)"}

# One schema per error format, named after the API document that defines it.
SCHEMAS: dict[Any, tuple[str, dict[str, Any]]] = {
    formats.inference: ("InferenceError", {
        "type": "object", "required": ["success", "error", "request_id"],
        "properties": {"success": {"type": "boolean", "const": False}, "error": {"type": "string"},
                       "detail": ANY, "request_id": REQUEST_ID}}),
    formats.multimedia: ("MultimediaError", {
        "type": "object", "required": ["detail", "request_id"],
        "properties": {"detail": {"type": "string"}, "request_id": REQUEST_ID}}),
    formats.autoserve: ("PlatformError", {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message", "timestamp", "request_id"],
                                 "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                                "details": ANY, "timestamp": {"type": "string"},
                                                "request_id": REQUEST_ID}}}}),
    formats.ttskit: ("TtsKitError", {
        "type": "object", "required": ["detail", "error_type", "request_id"],
        "properties": {"detail": {"type": "string"}, "error_type": {"type": "string"}, "request_id": REQUEST_ID}}),
    formats.openai: ("OpenAIError", {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["message", "type"],
                                 "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                                                "param": {"type": ["string", "null"]},
                                                "code": {"type": ["string", "null"]}}},
                       "request_id": REQUEST_ID}}),
    formats.devices: ("DeviceOperationsError", {
        "type": "object", "required": ["success", "error"],
        "properties": {"success": {"type": "boolean", "const": False},
                       "error": {"type": "object", "required": ["code", "message"],
                                 "properties": {"code": {"type": "string", "description": "INVALID_PARAMETERS, "
                                                         "DEVICE_NOT_FOUND, DEVICE_BUSY, INFERENCE_FAILED, ..."},
                                                "message": {"type": "string"}, "details": ANY}},
                       "request_id": REQUEST_ID}}),
}

DESCRIPTIONS = {
    400: "Malformed request: an unknown Host, a cross-site Origin's body, unparsable or too deeply nested JSON",
    401: "No valid credentials, or conflicting ones",
    403: "The credentials lack the permission this route needs, or a cross-site request",
    404: "What the path names does not exist (or is not the caller's)",
    413: "The body is larger than the server accepts",
    415: "The body's media type is not one this route reads",
    422: "A parameter or body field is invalid: the message names it",
    429: "A rate limit or a credential lockout: see Retry-After",
    "default": "Any other error in this API's format: for example 404 for an absent model, 409 for a conflict, "
               "503 for an engine or model that is not available, 504 for a timeout",
}


def statuses(method: str, path: str, operation: dict[str, Any], rules: Rules) -> list[int | str]:
    """The errors ``operation`` can answer besides the catch-all ``default``."""
    rule = rule_for(method.upper(), path, rules)
    out: list[int | str] = [400]
    if rule is not None and rule.access != Access.PUBLIC:
        out += [401, 403]
    if "{" in path:
        out.append(404)
    if "requestBody" in operation:
        out += [413, 415]
    if "requestBody" in operation or operation.get("parameters"):
        out.append(422)
    # 429 everywhere: besides the routes' rate limit groups, bad credentials lock out on any route
    return [*out, 429, "default"]


def document_errors(schema: dict[str, Any], rules: Rules, error_formats: ErrorFormats) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for path, operations in schema.get("paths", {}).items():
        name, body = SCHEMAS[error_formats.for_path(path)]
        components[name] = body
        content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in statuses(method, path, operation, rules):
                key = str(status)
                declared = responses.get(key, {})
                responses[key] = {"description": declared.get("description") or DESCRIPTIONS[status], "content": content}
    for replaced in ("HTTPValidationError", "ValidationError"):  # only FastAPI's 422s used them
        components.pop(replaced, None)
