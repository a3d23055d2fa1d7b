"""The devices surface's lines of the permission table. Every route counts against the "devices" rate limit
group (seed 004: 100 requests per minute per key); inference also counts per device (route code)."""

from bentos.api.http.permissions import Access, Rule, Rules


def reads() -> Rule:
    return Rule(Access.READ, "devices")


def writes() -> Rule:
    return Rule(Access.WRITE, "devices")


RULES: Rules = {
    "GET /api/device/list": reads(),
    "GET /api/device/status": reads(),
    "GET /api/device/capabilities/{device_id}": reads(),
    "POST /api/device/optimal": reads(),
    "POST /api/model/load/{device_id}": writes(),
    "POST /api/model/cache": writes(),
    "GET /api/model/cache": reads(),
    "GET /api/processing/sessions": reads(),
    "GET /api/processing/sessions/{session_id}": reads(),
    "POST /api/processing/sessions/{session_id}/control": writes(),
    "DELETE /api/processing/sessions/{session_id}": writes(),
    "POST /api/inference/execute/{device_id}": writes(),
    "POST /api/postprocessing/upscale": writes(),
    "GET /api/postprocessing/upscale/models": reads(),
    "POST /api/processing/batches/create": writes(),
    "POST /api/processing/batches/{batch_id}/execute": writes(),
    "GET /api/processing/batches/{batch_id}": reads(),
    "GET /api/memory/status": reads(),
    "POST /api/memory/allocations/allocate": writes(),
    "DELETE /api/memory/allocations/{allocation_id}": writes(),
    "POST /api/memory/transfer": writes(),
    "POST /api/memory/operations/defragment": writes(),
    "GET /api/memory/operations/{operation_id}": reads(),
}
