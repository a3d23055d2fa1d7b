"""The inference surface's lines of the permission table (seed 000: its routes need a JWT or a key when
auth is on). Downloads, loading, unloading, scaling and server optimize change the server: admin."""

from bentos.api.http.permissions import Rules, admin, public, read, write

RULES: Rules = {
    # system (system.py, root.py)
    "GET /": public(),  # API information for JSON clients, the home page for browsers
    "GET /health": public(),
    "GET /info": read(),
    "GET /models": read(),
    # inference (predict.py)
    "POST /predict": write(),
    "POST /predict/batch": write(),
    "POST /{model_name}/predict": write(),
    # models (models.py)
    "GET /models/available": read(),
    "GET /models/managed": read(),
    "GET /models/cache/info": read(),
    "GET /models/download/status/{download_id}": read(),
    "POST /models/download": admin(),
    "POST /models/manage": admin(),
    # autoscaler (autoscaler.py)
    "GET /autoscaler/stats": read(),
    "GET /autoscaler/health": read(),
    "GET /autoscaler/metrics": read(),
    "POST /autoscaler/scale": admin(),
    "POST /autoscaler/load": admin(),
    "DELETE /autoscaler/unload": admin(),
    # devices (gpu.py)
    "GET /gpu/detect": read(),
    "GET /gpu/best": read(),
    "GET /gpu/config": read(),
    "GET /gpu/report": read(),
    # server (server.py)
    "GET /server/config": read(),
    "GET /config": read(),
    "POST /server/optimize": admin(),
    "GET /metrics/server": read(),
    "GET /metrics/tts": read(),
    "GET /stats": read(),
    # logs (logs.py): names are status; contents may hold request details, so admin
    "GET /logs": read(),
    "GET /logs/{log_file}": admin(),
    "DELETE /logs/{log_file}": admin(),
}
