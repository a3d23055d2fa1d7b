"""The tasks surface's lines of the permission table (seed 002: every route needs a JWT or key when auth
is on). Creating, changing, cancelling and retrying tasks and uploading files are write; reads are read."""

from bentos.api.http.permissions import Rules, read, write

RULES: Rules = {
    "GET /tasks": read(),
    "POST /tasks": write(),
    "GET /tasks/types": read(),
    "GET /tasks/{task_id}": read(),
    "PUT /tasks/{task_id}": write(),
    "DELETE /tasks/{task_id}": write(),
    "POST /tasks/{task_id}/retry": write(),
    "POST /files/upload": write(),
    "GET /files/{file_id}": read(),
    "GET /files/{file_id}/download": read(),
    "GET /metrics/system": read(),
    "GET /metrics/tasks": read(),
    "WEBSOCKET /ws/events": read(),  # checked by bentos/api/http/websocket.py (?token=)
}
