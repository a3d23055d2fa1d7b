"""Seed 002's task routes on the fakes with real Huey workers: shapes, real work, priorities, schedules,
cancellation, retry, and the bad inputs."""

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.bentos.tasks.conftest import upload, wait_for

CSV = b"name,score,team\nada,1,x\nbob,5,y\ncy,3,x\ndee,7,y\n"


def create(client, **body):
    response = client.post("/tasks", json={"title": body.pop("title", "t"), **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_the_documented_data_processing_example_runs_and_writes_a_file(client):
    upload(client, "file.csv", CSV, "text/csv")
    task = create(client, title="Process data", task_type="data_processing",
                  parameters={"input_file": "file.csv", "output_format": "json"})
    assert task["status"] == "pending" and task["priority"] == "normal" and task["task_type"] == "data_processing"
    assert task["parameters"]["input_file"] == "file.csv" and task["created_at"].endswith("Z")
    done = wait_for(client, task["id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 100 and done["completed_at"] and done["error"] is None
    result = done["result"]
    assert result["records_processed"] == 4 and result["output_filename"] == "file.convert.json"
    content = client.get(result["download_url"])
    assert content.status_code == 200 and content.headers["content-type"].startswith("application/json")
    assert [row["name"] for row in content.json()] == ["ada", "bob", "cy", "dee"]
    meta = client.get(f"/files/{result['output_file']}").json()
    assert meta["task_id"] == task["id"] and meta["status"] == "output"


def test_filter_and_aggregate_do_real_work(client):
    source = upload(client, "scores.csv", CSV, "text/csv")
    filtered = wait_for(client, create(client, task_type="data_processing", parameters={
        "input_file": source["id"], "operation": "filter", "output_format": "csv",
        "filters": [{"column": "score", "op": ">=", "value": 3}], "columns": ["name"]})["id"])
    assert filtered["status"] == "completed" and filtered["result"]["records_written"] == 3
    assert client.get(filtered["result"]["download_url"]).text.split() == ["name", "bob", "cy", "dee"]
    totals = wait_for(client, create(client, task_type="data_processing", parameters={
        "input_file": source["id"], "operation": "aggregate", "output_format": "jsonl",
        "group_by": ["team"], "aggregations": {"score": "sum"}, "sort_by": "score", "descending": True})["id"])
    rows = [json.loads(line) for line in client.get(totals["result"]["download_url"]).text.splitlines()]
    assert rows == [{"team": "y", "score": 12}, {"team": "x", "score": 4}]


def test_batch_predict_runs_a_served_model_over_a_file(client):
    source = upload(client, "names.csv", CSV, "text/csv")
    done = wait_for(client, create(client, task_type="batch_predict", parameters={
        "model": "shouter", "input_file": source["id"], "input_column": "name", "batch_size": 3})["id"])
    assert done["status"] == "completed", done
    lines = [json.loads(line) for line in client.get(done["result"]["download_url"]).text.splitlines()]
    assert [line["result"]["text"] for line in lines] == ["ADA", "BOB", "CY", "DEE"]
    assert done["result"]["model_info"]["model"] == "shouter"


def test_a_task_that_cannot_do_its_work_fails_with_the_reason(client):
    source = upload(client, "few.csv", CSV, "text/csv")
    failed = wait_for(client, create(client, task_type="data_processing", parameters={
        "input_file": source["id"], "operation": "filter", "filters": [{"column": "age", "op": ">", "value": 1}]})["id"])
    assert failed["status"] == "failed" and "no column 'age'" in failed["error"]
    missing_model = wait_for(client, create(client, task_type="batch_predict", parameters={
        "model": "nope", "input_file": source["id"], "input_column": "name"})["id"])
    assert missing_model["status"] == "failed" and "nope" in missing_model["error"]


@pytest.mark.parametrize("body, field", [
    ({"task_type": "explode"}, "task_type"),
    ({"task_type": "data_processing", "parameters": {}}, "parameters.input_file"),
    ({"task_type": "data_processing", "parameters": {"input_file": "never-uploaded.csv"}}, "parameters.input_file"),
    ({"task_type": "data_processing", "parameters": {"input_file": "file.csv", "operation": "melt"}}, "parameters.operation"),
    ({"task_type": "wait", "priority": "urgent"}, "priority"),
    ({"task_type": "wait", "scheduled_at": "tomorrow"}, "scheduled_at"),
    ({"task_type": "wait", "parameters": {"seconds": -1}}, "parameters.seconds"),
    ({"task_type": "pipeline", "parameters": {"model": "not-in-catalog"}}, "parameters.model"),
    ({"task_type": "wait", "title": ""}, "title"),
])
def test_bad_tasks_are_422_naming_the_field(client, body, field):
    response = client.post("/tasks", json={"title": "t", **body})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and field in error["message"] and error["request_id"]


def test_unknown_task_types_list_the_known_ones(client):
    message = client.post("/tasks", json={"title": "t", "task_type": "explode"}).json()["error"]["message"]
    assert "data_processing" in message and "batch_predict" in message and "pipeline" in message
    types = {t["name"] for t in client.get("/tasks/types").json()["task_types"]}
    assert {"data_processing", "batch_predict", "pipeline", "synthesize", "transcribe", "wait"} <= types


def test_an_unknown_id_is_404_never_pending(client):
    for method, path in (("GET", "/tasks/no-such-task"), ("PUT", "/tasks/no-such-task"), ("DELETE", "/tasks/no-such-task"),
                         ("POST", "/tasks/no-such-task/retry")):
        response = client.request(method, path, json={})
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "NOT_FOUND"


def test_list_paginates_and_filters_by_status(client):
    ids = [create(client, task_type="wait", title=f"list {i}")["id"] for i in range(3)]
    for task_id in ids:
        wait_for(client, task_id)
    page = client.get("/tasks", params={"limit": 2, "offset": 0, "status": "completed"}).json()
    assert page["limit"] == 2 and page["offset"] == 0 and len(page["tasks"]) == 2 and page["total"] >= 3
    assert all(t["status"] == "completed" for t in page["tasks"])
    assert client.get("/tasks", params={"limit": 101}).status_code == 422
    assert client.get("/tasks", params={"status": "sleeping"}).status_code == 422


def test_strict_priority_order_with_one_worker(tmp_path):
    from tests.bentos.fakes import fake_server

    server = fake_server(tmp_path)
    try:
        client = server.client
        # The only worker is busy while all 100 tasks are queued; then it is freed and they run one by one.
        blocker = create(client, task_type="wait", parameters={"seconds": 60, "steps": 600}, title="blocker")
        server.start_task_workers(threads=1)
        wait_for(client, blocker["id"], ("running",))
        levels = ["low", "normal", "high", "critical"]
        made = [create(client, task_type="wait", priority=levels[i % 4], title=f"p{i}") for i in range(100)]
        client.delete(f"/tasks/{blocker['id']}")
        done = [wait_for(client, t["id"], timeout=30) for t in made]
        order = sorted(done, key=lambda t: t["started_at"])
        ranks = [levels.index(t["priority"]) for t in order]
        assert ranks == sorted(ranks, reverse=True), ranks  # critical first ... low last
        for level in levels:  # first in, first out within a level
            titles = [t["title"] for t in order if t["priority"] == level]
            assert titles == sorted(titles, key=lambda name: int(name[1:]))
    finally:
        server.close()


def test_a_scheduled_task_waits_for_its_time(client):
    when = datetime.now(timezone.utc) + timedelta(seconds=2)
    task = create(client, task_type="wait", scheduled_at=when.isoformat())
    assert task["status"] == "scheduled" and task["scheduled_at"]
    time.sleep(1.0)
    assert client.get(f"/tasks/{task['id']}").json()["status"] == "scheduled"
    done = wait_for(client, task["id"], timeout=10)
    assert done["status"] == "completed"
    started = datetime.fromisoformat(done["started_at"].replace("Z", "+00:00"))
    assert started >= when - timedelta(milliseconds=50)


def test_cancel_a_pending_task_and_it_never_runs(client):
    task = create(client, task_type="wait", scheduled_at=(datetime.now(timezone.utc) + timedelta(seconds=1)).isoformat())
    response = client.delete(f"/tasks/{task['id']}")
    assert response.status_code == 200 and response.json()["message"] == "Task cancelled successfully"
    time.sleep(2.0)
    after = client.get(f"/tasks/{task['id']}").json()
    assert after["status"] == "cancelled" and after["started_at"] is None
    assert client.delete(f"/tasks/{task['id']}").status_code == 409  # already finished


def test_cancel_a_running_task_stops_it(client):
    task = create(client, task_type="wait", parameters={"seconds": 30, "steps": 300})
    wait_for(client, task["id"], ("running",))
    assert client.delete(f"/tasks/{task['id']}").json()["status"] == "running"  # asked to stop
    done = wait_for(client, task["id"], timeout=10)  # a 30 s task: cancelled well before its end, not timed
    assert done["status"] == "cancelled" and done["progress"] < 100


def test_retry_only_from_failed_or_cancelled_and_it_counts(client):
    task = create(client, task_type="wait", parameters={"seconds": 30, "steps": 300})
    wait_for(client, task["id"], ("running",))
    client.delete(f"/tasks/{task['id']}")
    wait_for(client, task["id"])
    retried = client.post(f"/tasks/{task['id']}/retry")
    assert retried.status_code == 200 and retried.json()["retry_count"] == 1 and retried.json()["status"] == "pending"
    client.delete(f"/tasks/{task['id']}")
    wait_for(client, task["id"])
    quick = wait_for(client, create(client, task_type="wait")["id"])
    refused = client.post(f"/tasks/{quick['id']}/retry")
    assert refused.status_code == 409 and "completed" in refused.json()["error"]["message"]


def test_put_changes_a_waiting_task_and_refuses_a_started_one(client):
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    task = create(client, task_type="wait", scheduled_at=later, title="before")
    changed = client.put(f"/tasks/{task['id']}", json={"title": "after", "priority": "high", "description": "d"})
    assert changed.status_code == 200 and changed.json()["title"] == "after" and changed.json()["priority"] == "high"
    client.delete(f"/tasks/{task['id']}")
    done = wait_for(client, create(client, task_type="wait")["id"])
    assert client.put(f"/tasks/{done['id']}", json={"title": "x"}).status_code == 409
    assert client.put(f"/tasks/{done['id']}", json={"priority": "asap"}).status_code == 422


def test_task_metrics_are_counted(client):
    wait_for(client, create(client, task_type="wait")["id"])
    metrics = client.get("/metrics/tasks").json()
    assert metrics["tasks_completed"] >= 1 and metrics["worker_count"] == 1 and metrics["worker_threads"] == 2 + 4  # both lanes: default 2, batched 4
    assert metrics["tasks_total"] == sum(metrics[f"tasks_{s}"] for s in ("pending", "scheduled", "running", "completed", "failed", "cancelled"))
    assert metrics["throughput"] > 0 and metrics["average_processing_time"] >= 0 and metrics["timestamp"]
    system = client.get("/metrics/system").json()
    assert 0 <= system["cpu_usage"] <= 100 and 0 < system["memory_usage"] < 100 and system["request_rate"] > 0
    assert system["network_io"]["bytes_received"] >= 0 and system["active_connections"] >= 1
