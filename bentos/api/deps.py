"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import bentoml
from fastapi import Depends

if TYPE_CHECKING:
    from bentos.gateway import Gateway


async def current_gateway() -> Any:
    # async: a plain ``def`` dependency costs a thread-pool round trip on every request
    return bentoml.get_current_service()


GatewayDep = Annotated["Gateway", Depends(current_gateway)]
