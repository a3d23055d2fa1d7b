"""Seed 004's Device Operations API under /api: devices, model sessions and the model cache, inference and
upscaling, batches (tasks of the task system) and memory. Answers are ``{"success": true, "data": ...}``;
errors ``{"success": false, "error": {code, message, details}}`` under its prefixes, unknown paths included."""

from bentos.api.devices import batches, device, inference, memory, models
from bentos.api.devices.permissions import RULES
from bentos.api.http import formats
from bentos.api.http.surface import Surface

PREFIXES = ("/api/device", "/api/model", "/api/processing", "/api/inference", "/api/postprocessing", "/api/memory")

SURFACE = Surface(
    name="devices",
    routers=(device.router, models.models, models.sessions_router, inference.router, batches.router, memory.router),
    error_formats={prefix: formats.devices for prefix in PREFIXES},
    rules=RULES,
)
