"""Seed 004's answers are typed: every route's data has a schema in the spec (camelCase, as answered), and the
answers the other tests do not reach (an async transfer and its operation, a released reservation) pass it."""

import time

from bentos.api.devices import PREFIXES
from tests.bentos.devices.conftest import error_of


def test_every_route_declares_the_shape_of_its_data(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    routes = 0
    for path, methods in spec["paths"].items():
        if not path.startswith(PREFIXES):
            continue
        for method, operation in methods.items():
            success = next(code for code in operation["responses"] if code.startswith("2"))
            envelope = operation["responses"][success]["content"]["application/json"]["schema"]["$ref"]
            data = schemas[envelope.rsplit("/", 1)[1]]["properties"]["data"]
            assert "additionalProperties" not in data, f"{method.upper()} {path} answers an untyped object"
            routes += 1
    assert routes == 23
    assert "memoryReturnedMB" in schemas["UnloadOut"]["properties"] and "async" in schemas["OperationStarted"]["properties"]
    assert "bandwidthMBps" in schemas["TransferOut"]["properties"] and "kilnDevice" in schemas["DeviceStatusOut"]["properties"]


def test_async_transfer_its_operation_and_release(client):
    allocated = client.post("/api/memory/allocations/allocate", json={"size": 2, "type": "workspace", "deviceId": "cpu-0",
                                                                       "persistent": True})
    assert allocated.status_code == 201, allocated.text
    allocation = allocated.json()["data"]
    assert allocation["status"] == "allocated" and allocation["sizeBytes"] == 2 * 1024 * 1024 and allocation["size"] == 2
    started = client.post("/api/memory/transfer", json={"sourceDevice": "cpu-0", "targetDevice": "cpu-0",
                                                        "allocationId": allocation["allocationId"], "async": True})
    assert started.status_code == 200, started.text
    queued = started.json()["data"]
    assert queued["async"] is True and queued["status"] == "running"
    assert queued["statusUrl"] == f"/api/memory/operations/{queued['operationId']}"
    deadline = time.monotonic() + 30
    while True:
        operation = client.get(queued["statusUrl"]).json()["data"]
        if operation["status"] != "running":
            break
        assert time.monotonic() < deadline, operation
        time.sleep(0.05)
    assert operation["kind"] == "transfer" and operation["status"] == "completed" and operation["error"] is None
    result = operation["result"]
    assert result["verified"] is True and result["bytes"] == 2 * 1024 * 1024 and result["sameDevice"] is True
    assert "bandwidthMBps" in result and result["allocationId"] == allocation["allocationId"]
    released = client.delete(f"/api/memory/allocations/{allocation['allocationId']}")
    assert released.status_code == 200, released.text
    assert released.json()["data"]["status"] == "released" and released.json()["data"]["transfers"] == 1
    error_of(client.delete(f"/api/memory/allocations/{allocation['allocationId']}"), 404, "ALLOCATION_NOT_FOUND")
    error_of(client.get("/api/memory/operations/op-nothing"), 404, "NOT_FOUND")
