"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import bentoml
from fastapi import Depends

if TYPE_CHECKING:
    from bentos.gateway import Gateway


def current_gateway() -> Any:
    return bentoml.get_current_service()


GatewayDep = Annotated["Gateway", Depends(current_gateway)]
