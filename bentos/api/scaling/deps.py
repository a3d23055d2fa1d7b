"""The ML Controller's one dependency: the scaling service (kiln.scaling.service.ScalingService)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from bentos.api.http.backends import backend
from kiln.scaling.service import ScalingService

scaling_backend = backend("scaling")

ScalingDep = Annotated[ScalingService, Depends(scaling_backend)]
