"""Seed 001's Generation APIs under /api: text-to-image (generate, status, models), image-to-image, and
text/image-to-video. Every generation is a task of the task system (kiln/tasks/types/generation.py);
outputs are served under /outputs/images and /outputs/videos (the /outputs mount of bentos/api)."""

from bentos.api.generation import routes
from bentos.api.generation.permissions import RULES
from bentos.api.http import formats
from bentos.api.http.surface import Surface

SURFACE = Surface(
    name="generation",
    routers=(routes.router,),
    error_formats={prefix: formats.multimedia for prefix in
                   ("/api/text-to-image", "/api/image-to-image", "/api/text-to-video", "/api/image-to-video")},
    rules=RULES,
)
