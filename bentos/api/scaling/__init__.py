"""Seed 002's ML Controller at ``/ml``: scaling predictions, the history of scaling decisions, and
retraining the scaling predictor (a task). The logic is kiln/scaling/."""

from bentos.api.http import formats
from bentos.api.http.surface import Surface
from bentos.api.scaling import routes
from bentos.api.scaling.permissions import RULES

SURFACE = Surface(
    name="scaling",
    routers=(routes.router,),
    error_formats={"/ml": formats.autoserve},
    rules=RULES,
)
