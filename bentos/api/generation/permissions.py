"""The generation surface's lines of the permission table: generating is write work (the "generation" rate
limit group), status and the model list are reads. Output files are the speech surface's /outputs line."""

from bentos.api.http.permissions import Rules, read, write

RULES: Rules = {
    "POST /api/text-to-image/generate": write(),
    "GET /api/text-to-image/status/{task_id}": read(),
    "GET /api/text-to-image/models": read(),
    "POST /api/image-to-image/generate": write(),
    "POST /api/text-to-video/generate": write(),
    "POST /api/image-to-video/generate": write(),
}
