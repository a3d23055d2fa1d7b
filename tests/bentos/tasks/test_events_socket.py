"""``WS /ws/events``: task_status from the event log as a real task runs, system_metrics, scaling events,
auth with ?token=, and a bounded queue per client."""

import asyncio

import pytest
from starlette.websockets import WebSocketDisconnect

from kiln.tasks import events
from kiln.tasks.hub import EventHub


def receive_until(ws, predicate, limit=200):
    seen = []
    for _ in range(limit):
        message = ws.receive_json()
        seen.append(message)
        if predicate(message):
            return seen
    raise AssertionError(f"not seen in {limit} messages: {seen[-5:]}")


def test_task_status_events_follow_a_real_task(client):
    with client.websocket_connect("/ws/events") as ws:
        assert ws.receive_json()["type"] == "connected"
        task = client.post("/tasks", json={"title": "t", "task_type": "wait", "parameters": {"seconds": 0.4, "steps": 4}}).json()
        seen = receive_until(ws, lambda m: m["type"] == "task_status" and m["data"]["task_id"] == task["id"]
                             and m["data"]["status"] == "completed")
    mine = [m["data"] for m in seen if m["type"] == "task_status" and m["data"]["task_id"] == task["id"]]
    statuses = [d["status"] for d in mine]
    assert statuses[0] == "pending" and "running" in statuses and statuses[-1] == "completed"
    progress = [d["progress"] for d in mine if d["status"] == "running"]
    assert progress == sorted(progress) and max(progress) == 100 and len(progress) >= 3
    assert all(d["timestamp"].endswith("Z") for d in mine)


def test_system_metrics_arrive_every_few_seconds(client):
    with client.websocket_connect("/ws/events") as ws:
        seen = receive_until(ws, lambda m: m["type"] == "system_metrics")
    data = seen[-1]["data"]
    assert set(data) >= {"cpu_usage", "memory_usage", "active_connections", "timestamp"} and data["active_connections"] >= 1


def test_scaling_events_from_the_log_reach_clients(client, server):
    database = server.client.app.state.access.database
    with client.websocket_connect("/ws/events") as ws:
        ws.receive_json()
        import time

        time.sleep(0.5)  # the tail starts at the newest event
        events.publish(database, "scaling_event", {"service": "adder", "action": "scale_up", "from_replicas": 1,
                                                    "to_replicas": 2, "reason": "test", "timestamp": "t"})
        seen = receive_until(ws, lambda m: m["type"] == "scaling_event")
    assert seen[-1]["data"]["to_replicas"] == 2


def test_auth_on_needs_a_token(tmp_path):
    from tests.bentos.fakes import fake_server

    server = fake_server(tmp_path, enable_auth=True, api_keys={"alice": "alice-key-0123456789"})
    try:
        for url in ("/ws/events", "/ws/events?token=wrong-token-123"):
            with pytest.raises(WebSocketDisconnect) as closed:
                with server.client.websocket_connect(url) as ws:
                    ws.receive_json()
            assert closed.value.code == 4401, url
        with server.client.websocket_connect("/ws/events?token=alice-key-0123456789") as ws:
            assert ws.receive_json()["type"] == "connected"
    finally:
        server.close()


def test_a_slow_client_loses_its_oldest_events_not_the_server():
    async def scenario():
        hub = EventHub(queue_size=5)
        slow = hub.subscribe(lambda message: True)
        for index in range(20):
            hub.publish({"type": "task_status", "data": {"n": index}})
        kept = [slow.queue.get_nowait()["data"]["n"] for _ in range(slow.queue.qsize())]
        return kept, slow.dropped

    kept, dropped = asyncio.run(scenario())
    assert kept == [15, 16, 17, 18, 19] and dropped == 15


def test_pool_changes_become_scaling_events(client, server):
    with client.websocket_connect("/ws/events") as ws:
        ws.receive_json()
        import time

        time.sleep(0.5)
        response = client.post("/autoscaler/scale", params={"model_name": "adder", "target_instances": 2}, headers=server.admin)
        assert response.status_code == 200
        seen = receive_until(ws, lambda m: m["type"] == "scaling_event" and m["data"]["service"] == "adder")
    event = seen[-1]["data"]
    assert event["trigger"] == "manual" and event["to_replicas"] == 2 and event["action"] == "scale_up"
    assert "queue_depth" in event["metrics"] and event["timestamp"].endswith("Z")
    client.post("/autoscaler/scale", params={"model_name": "adder", "target_instances": 1}, headers=server.admin)
