"""The `pipeline` task type launches a real Dagster run (here without the webserver: `python -m
pipelines.launch` on the session's instance), follows it, and a cancel terminates it."""

import threading
import time

import dagster as dg
import pytest

from kiln.db import Database
from kiln.filestore.store import FileStore
from kiln.settings import get_settings
from kiln.tasks.registry import default_registry
from kiln.tasks.runner import TaskRunner
from kiln.tasks.service import TaskService

pytestmark = pytest.mark.slow


@pytest.fixture
def tasks(built_workspace, tmp_path):
    settings = get_settings().model_copy(update={"dagster_port": 1})  # no webserver there: the process path
    database = Database(f"sqlite:///{tmp_path / 'records.db'}")
    database.migrate()
    service = TaskService(settings, database)
    runner = TaskRunner(settings, database, default_registry(), FileStore(settings, database), worker_id="test")
    return service, runner


def dagster_run(task_id: str):
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"kiln/task_id": task_id}))
    return runs[0] if runs else None


def test_a_pipeline_task_runs_a_dagster_job_and_reports_it(tasks):
    service, runner = tasks
    task = service.create(None, "export example", "pipeline", {"model": "example", "job": "export"})
    runner.run(task.id, task.dispatch)
    done = service.get(task.id, None, True)
    assert done.status == "completed", done.error
    assert done.result["status"] == "SUCCESS" and done.result["via"] == "process" and done.result["steps_ended"] >= 1
    run = dagster_run(task.id)
    assert run is not None and run.run_id == done.result["dagster_run_id"] and run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags.get("dagster/partition") == "example"


def test_cancelling_a_pipeline_task_terminates_its_run(tasks):
    service, runner = tasks
    # a retraining that outlasts the test (epochs far beyond the default): with every asset reused the run could
    # end before the cancel reaches it, and a run that finished keeps its result (completed), rightly
    slow = {"ops": {"raw_model": {"config": {"epochs": 100_000}}}}
    task = service.create(None, "whole pipeline", "pipeline", {"model": "example", "job": "model_pipeline", "run_config": slow})
    thread = threading.Thread(target=runner.run, args=(task.id, task.dispatch))
    thread.start()
    deadline = time.monotonic() + 120
    while dagster_run(task.id) is None or dagster_run(task.id).status != dg.DagsterRunStatus.STARTED:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.5)
    service.cancel(task.id, None, True)
    runner.running[task.id].cancel()  # the heartbeat's job in a worker process
    thread.join(timeout=200)  # the launch process ends within its own bounds (kiln.integrations.dagster_runs)
    assert not thread.is_alive()
    assert service.get(task.id, None, True).status == "cancelled"
    assert dagster_run(task.id).status == dg.DagsterRunStatus.CANCELED


def test_retraining_the_scaling_predictor_runs_its_asset(tasks):
    """What POST /ml/model/retrain creates: a pipeline task of the unpartitioned scaling_predictor job, over
    the traffic recorded in Kiln's records database (the session's, which the launched run reads)."""
    from kiln.errors import InvalidInput
    from kiln.scaling import predictor as predictors
    from kiln.store import ModelStore
    from tests.traffic import daily_rates, write_samples

    service, runner = tasks
    with pytest.raises(InvalidInput, match="not per model"):
        service.create(None, "x", "pipeline", {"job": "retrain_scaling_predictor", "model": "example"})
    with pytest.raises(InvalidInput, match="needs a catalog model"):
        service.create(None, "x", "pipeline", {"job": "export"})
    settings = get_settings()
    records = Database(settings.records_database_url)
    records.migrate()
    write_samples(records, "example", daily_rates(200, seed=8))
    task = service.create(None, "retrain", "pipeline", {"job": "retrain_scaling_predictor"})
    runner.run(task.id, task.dispatch)
    done = service.get(task.id, None, True)
    assert done.status == "completed", done.error
    champion = predictors.champion(ModelStore(settings.model_store_dir))
    assert champion is not None and "example" in predictors.load(champion).models
