"""The training surface's lines of the permission table: starting and stopping a training are write work
(they run for minutes on the server's cores); reading its status is read. A caller sees their own trainings
(an admin: everyone's), as with tasks."""

from bentos.api.http.permissions import Rules, read, write

RULES: Rules = {
    "POST /api/training/start": write(),
    "GET /api/training/status/{task_id}": read(),
    "POST /api/training/stop/{task_id}": write(),
    "POST /api/llm-finetuning/lora/start": write(),
    "POST /api/llm-finetuning/qlora/start": write(),
    "POST /api/llm-finetuning/test": write(),  # runs the model
    "POST /api/llm-finetuning/merge": write(),  # writes a model into the store
    "WEBSOCKET /ws/training": read(),  # checked by bentos/api/http/websocket.py (?token=)
    "WEBSOCKET /api/ws/training": read(),
}
