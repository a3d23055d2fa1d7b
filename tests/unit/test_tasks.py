"""The task system's core without HTTP: the state machine's races, lost workers, missing queue messages,
the registry's validation, and the runner's outcomes."""

import threading
import time
from datetime import timedelta

import pytest

from kiln.db import Database
from kiln.errors import Conflict, InvalidInput
from kiln.settings import Settings
from kiln.tasks import queue
from kiln.tasks.models import Task, TaskWorker, utcnow
from kiln.tasks.records import TaskRecords
from kiln.tasks.runner import TaskRunner, reap
from kiln.tasks.service import TaskService
from kiln.tasks.worker import requeue_missing


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path, task_lost_after_seconds=2)


@pytest.fixture
def database(settings):
    database = Database(settings.records_database_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def service(settings, database):
    return TaskService(settings, database)


def test_a_task_is_claimed_by_exactly_one_of_many_racing_workers(service, database):
    task = service.create(None, "race", "wait")
    records, winners = TaskRecords(database), []
    barrier = threading.Barrier(8)

    def racer(index):
        barrier.wait()
        if records.claim(task.id, task.dispatch, f"w{index}") is not None:
            winners.append(index)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1 and records.get(task.id).status == "running"


def test_a_stale_dispatch_never_runs(service, database):
    task = service.create(None, "stale", "wait")
    records = TaskRecords(database)
    assert records.claim(task.id, task.dispatch, "w") is not None
    records.finish(records.get(task.id), "failed", error="boom")
    retried = service.retry(task.id, None, True)
    assert retried.dispatch == task.dispatch + 1 and retried.retry_count == 1
    assert records.claim(task.id, task.dispatch, "w") is None  # the old message
    assert records.claim(task.id, retried.dispatch, "w") is not None


def test_a_cancelled_waiting_task_is_never_claimed(service, database):
    task = service.create(None, "c", "wait")
    assert service.cancel(task.id, None, True).status == "cancelled"
    assert TaskRecords(database).claim(task.id, task.dispatch, "w") is None
    with pytest.raises(Conflict):
        service.cancel(task.id, None, True)


def test_tasks_of_a_silent_worker_end_failed(service, database, settings):
    records = TaskRecords(database)
    records.register_worker("gone", 1, "sqlite")
    task = service.create(None, "lost", "wait")
    records.claim(task.id, task.dispatch, "gone")
    assert reap(records, settings) == []  # its heartbeat is fresh
    with database.session() as session:
        session.get(TaskWorker, "gone").heartbeat_at = utcnow() - timedelta(seconds=10)
    assert reap(records, settings) == [task.id]
    lost = records.get(task.id)
    assert lost.status == "failed" and "worker running this task was lost" in lost.error
    assert service.retry(task.id, None, True).status == "pending"


def test_waiting_tasks_without_a_queue_message_are_queued_again(service, database, settings):
    task = service.create(None, "orphan", "wait")
    huey = queue.huey_for(settings)
    huey.flush()  # the queue file lost its messages
    assert requeue_missing(settings, TaskRecords(database)) == [task.id]
    assert queue.message_id(task.id, task.dispatch + 1) in queue.queued_ids(settings)
    assert requeue_missing(settings, TaskRecords(database)) == []  # present now: nothing to do


def test_a_task_types_lane_takes_its_messages_to_that_lanes_queue_only(settings, database):
    from kiln.tasks.registry import TaskRegistry, TaskType
    from kiln.tasks.types.wait import WaitParameters, wait

    registry = TaskRegistry()
    registry.register(TaskType("quick", "batched wait", WaitParameters, wait, lane="batched"))
    registry.register(TaskType("chosen", "lane from the parameters", WaitParameters, wait,
                               lane=lambda parameters, inputs: "batched" if parameters.seconds == 0 else "default"))
    service = TaskService(settings, database, registry)
    quick, long_one = service.create(None, "q", "quick"), service.create(None, "l", "chosen", {"seconds": 5})
    assert (quick.lane, long_one.lane, service.create(None, "c", "chosen").lane) == ("batched", "default", "batched")
    batched = {t.id for t in queue.huey_for(settings, "batched").pending()}
    default = {t.id for t in queue.huey_for(settings).pending()}
    assert queue.message_id(quick.id, 0) in batched and queue.message_id(quick.id, 0) not in default
    assert queue.message_id(long_one.id, 0) in default and queue.message_id(long_one.id, 0) not in batched
    queue.huey_for(settings, "batched").flush()  # that lane's queue lost its messages: they come back there
    assert quick.id in requeue_missing(settings, TaskRecords(database))
    assert queue.message_id(quick.id, 1) in {t.id for t in queue.huey_for(settings, "batched").pending()}
    with pytest.raises(ValueError, match="unknown task lane"):
        queue.huey_for(settings, "fast")


def test_priority_change_requeues_under_a_new_dispatch(service, settings):
    task = service.create(None, "p", "wait", scheduled_at=utcnow() + timedelta(hours=1))
    changed = service.update(task.id, None, True, priority="critical")
    assert changed.priority == 3 and changed.dispatch == task.dispatch + 1
    assert queue.message_id(task.id, changed.dispatch) in queue.queued_ids(settings)


def test_owners_are_kept_apart(service):
    task = service.create("alice", "mine", "wait")
    with pytest.raises(Exception) as denied:
        service.get(task.id, "bob", False)
    assert getattr(denied.value, "status_code", None) == 404
    assert service.get(task.id, "bob", True).id == task.id
    assert service.list("bob", False, None, 50, 0)["total"] == 0


def test_create_validates_parameters_and_priority(service):
    with pytest.raises(InvalidInput) as bad:
        service.create(None, "t", "wait", {"seconds": "soon"})
    assert bad.value.field == "parameters.seconds"
    with pytest.raises(InvalidInput) as priority:
        service.create(None, "t", "wait", priority="urgent")
    assert priority.value.field == "priority"


def test_the_runner_records_each_outcome(settings, database):
    from kiln.filestore.store import FileStore
    from kiln.tasks.registry import TaskRegistry, TaskType
    from kiln.tasks.types import wait

    registry = TaskRegistry()
    for kind in wait.TYPES:
        registry.register(kind)

    def boom(parameters, context):
        raise ValueError("the input is bad")

    registry.register(TaskType("boom", "fails", wait.WaitParameters, boom))
    service = TaskService(settings, database, registry)
    runner = TaskRunner(settings, database, registry, FileStore(settings, database), worker_id="w")
    ok, bad = service.create(None, "ok", "wait", {"seconds": 0.05}), service.create(None, "bad", "boom")
    runner.run(ok.id, ok.dispatch)
    runner.run(bad.id, bad.dispatch)
    runner.run(ok.id, ok.dispatch)  # a duplicate message: nothing happens
    done, failed = service.get(ok.id, None, True), service.get(bad.id, None, True)
    assert done.status == "completed" and done.result["steps"] == 1 and done.progress == 100
    assert failed.status == "failed" and failed.error == "ValueError: the input is bad"
    assert done.started_at <= done.completed_at


def test_a_running_task_stops_at_its_next_progress_point(settings, database):
    from kiln.filestore.store import FileStore
    from kiln.tasks.registry import default_registry

    service = TaskService(settings, database)
    runner = TaskRunner(settings, database, default_registry(), FileStore(settings, database), worker_id="w")
    task = service.create(None, "long", "wait", {"seconds": 20, "steps": 200})
    thread = threading.Thread(target=runner.run, args=(task.id, task.dispatch))
    thread.start()
    while task.id not in runner.running:
        time.sleep(0.01)
    service.cancel(task.id, None, True)
    runner.running[task.id].cancel()  # what the heartbeat does when it sees the request
    thread.join(timeout=5)
    assert not thread.is_alive() and service.get(task.id, None, True).status == "cancelled"


def test_task_records_match_the_migration(database):
    with database.session() as session:
        session.add(Task(title="x", task_type="wait", parameters={}, priority=1, status="pending", progress=0.0,
                         retry_count=0, dispatch=0, cancel_requested=False))
