"""Seed 000's inference framework at ``/``: prediction, models, autoscaler, GPUs, server, stats, logs."""

from bentos.api.http import formats
from bentos.api.http.surface import Surface
from bentos.api.inference import autoscaler, gpu, logs, models, predict, root, server, system
from bentos.api.inference.permissions import RULES

SURFACE = Surface(
    name="inference",
    # /predict first: the hot path is matched before every other route.
    routers=(predict.router, root.router, system.router, models.router, autoscaler.router, gpu.router,
             server.router, logs.router),
    error_formats={"/": formats.inference},
    rules=RULES,
    late_routers=(predict.model_router,),
    spec_hooks=(autoscaler.spec_limits,),
)
