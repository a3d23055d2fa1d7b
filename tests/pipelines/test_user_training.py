"""The `training` task type (POST /api/training/start) on a real Dagster run of the user_training job, here
without the webserver (`python -m pipelines.launch` on the session's instance): digits trains, the task
reports steps, loss and validation metrics read from MLflow, the model lands in the store; a stop cancels the
run with a checkpoint kept, and the same request again resumes from it."""

import threading
import time

import dagster as dg
import pytest

from kiln.db import Database
from kiln.filestore.store import FileStore
from kiln.settings import get_settings
from kiln.store import ModelStore
from kiln.tasks.registry import default_registry
from kiln.tasks.runner import TaskRunner
from kiln.tasks.service import TaskService
from kiln.training.progress import training_status

pytestmark = pytest.mark.slow


@pytest.fixture
def tasks(kiln_home, tmp_path):
    settings = get_settings().model_copy(update={"dagster_port": 1, "task_progress_seconds": 0})  # no webserver: the process path
    database = Database(f"sqlite:///{tmp_path / 'records.db'}")
    database.migrate()
    files = FileStore(settings, database)
    service = TaskService(settings, database, services=files)
    runner = TaskRunner(settings, database, default_registry(), files, worker_id="test")
    return service, runner, database


def dagster_run(task_id: str):
    runs = dg.DagsterInstance.get().get_runs(filters=dg.RunsFilter(tags={"kiln/task_id": task_id}))
    return runs[0] if runs else None


def test_a_digits_training_is_a_dagster_run_with_real_progress(tasks):
    service, runner, database = tasks
    params = {"model_type": "digits", "base_model": "digits-mlp", "output_dir": "/models/user-digits",
              "epochs": 3, "batch_size": 64, "learning_rate": 0.003}
    task = service.create(None, "train digits", "training", params)
    runner.run(task.id, task.dispatch)
    done = service.get(task.id, None, True)
    assert done.status == "completed", done.error
    status = training_status(done, database)
    assert status["total_steps"] == 3 * 23 and status["current_step"] == status["total_steps"]
    assert status["current_epoch"] == 3 and status["loss"] is not None and status["loss"] < 0.5
    assert status["metrics"]["accuracy"] > 0.9 and status["metrics"]["f1_score"] > 0.9
    assert status["mlflow_run_id"] and status["dagster_run_id"] == dagster_run(task.id).run_id
    assert dagster_run(task.id).status == dg.DagsterRunStatus.SUCCESS
    stored = ModelStore(get_settings().model_store_dir).latest("user-digits")
    assert stored is not None and stored.info["kiln_task_id"] == task.id and stored.version == done.result["model_version"]
    assert (stored.path / "model.safetensors").is_file()
    from mlflow import MlflowClient

    history = MlflowClient(get_settings().tracking_uri).get_metric_history(status["mlflow_run_id"], "loss")
    assert len(history) == 69 and history[-1].value < history[0].value  # every step logged, and the loss fell
    from bentos.models import served_models  # registered past the champion gate: /predict serves it by name
    from kiln.engines import load_engine
    from kiln.recipes.digits import digits_split

    served = served_models()["user-digits"]
    assert served.task == "classification" and served.registry_version == status["registered_version"]
    _, x_test, _, y_test = digits_split()
    predicted = [r["class_index"] for r in load_engine(served.task, served.path, "user-digits").predict(x_test[:50].tolist())]
    assert sum(int(p == t) for p, t in zip(predicted, y_test[:50])) >= 40


def start_and_wait(service, runner, database, params, until_step):
    """Run a training task in a thread until its status shows ``until_step``; answer (task, thread)."""
    task = service.create(None, "long digits", "training", params)
    thread = threading.Thread(target=runner.run, args=(task.id, task.dispatch))
    thread.start()
    deadline = time.monotonic() + 120
    while training_status(service.get(task.id, None, True), database)["current_step"] < until_step:
        assert time.monotonic() < deadline and thread.is_alive(), "the training did not get going"
        time.sleep(0.2)
    return task, thread


def stop(service, runner, task, thread):
    service.cancel(task.id, None, True)
    runner.running[task.id].cancel()  # the heartbeat's job in a worker process
    thread.join(timeout=90)
    assert not thread.is_alive()


def test_stopping_cancels_the_run_and_the_same_request_resumes_from_its_checkpoint(tasks):
    from mlflow import MlflowClient

    service, runner, database = tasks
    params = {"model_type": "digits", "base_model": "digits-mlp", "output_dir": "resumable-digits",
              "epochs": 60, "batch_size": 16, "save_steps": 20}  # 5400 steps: far longer than the test waits
    task, thread = start_and_wait(service, runner, database, params, until_step=45)
    stop(service, runner, task, thread)
    stopped = service.get(task.id, None, True)
    assert stopped.status == "cancelled" and training_status(stopped, database)["status"] == "cancelled"
    assert dagster_run(task.id).status == dg.DagsterRunStatus.CANCELED
    checkpoints = list((get_settings().model_store_dir.parent / "checkpoints" / "user-training" / "resumable-digits").glob("*/checkpoint.pt"))
    assert len(checkpoints) == 1, "the stopped run keeps its last checkpoint"

    again, thread = start_and_wait(service, runner, database, params, until_step=1)
    run_id = training_status(service.get(again.id, None, True), database)["mlflow_run_id"]
    stop(service, runner, again, thread)
    first_step = min(m.step for m in MlflowClient(get_settings().tracking_uri).get_metric_history(run_id, "loss"))
    assert first_step > 40, "the rerun started after the checkpoint, not from step 1"


def test_lora_on_a_tiny_llama_runs_in_dagster_then_tests_and_merges(tasks, tmp_path):
    """What /api/llm-finetuning/lora/start, /test and /merge do, through the service the routes call."""
    from kiln.training.service import TrainingService
    from tests.tiny_llama import COLOURS, store_tiny_llama, write_instructions

    service, runner, database = tasks
    store = ModelStore(get_settings().model_store_dir)
    store_tiny_llama(store, "tiny-llama-dagster")
    dataset = write_instructions(tmp_path / "instructions.jsonl").read_bytes()
    service.services.save_bytes(dataset, "instructions.jsonl", "application/json", None, status="uploaded")
    training = TrainingService(service)
    started = training.start_lora(None, {"base_model": "tiny-llama-dagster", "dataset_path": "instructions.jsonl",
                                         "output_dir": "/models/colours-lora", "epochs": 30, "batch_size": 4,
                                         "learning_rate": 0.05, "max_length": 48, "gradient_accumulation_steps": 2,
                                         "lora_dropout": 0.0}, "none")
    task = service.get(started["task_id"], None, True)
    runner.run(task.id, task.dispatch)
    done = service.get(task.id, None, True)
    assert done.status == "completed", done.error
    status = training_status(done, database)
    assert status["total_steps"] == 45 and status["current_step"] == 45 and status["model_name"] == "colours-lora"
    answer = training.test(task.id, None, True, "what colour is the sky", 1, 0.0, 0)["response"]
    assert answer in COLOURS.values()
    from kiln.training.llm import ADAPTERS

    loaded = ADAPTERS.get(store.latest("colours-lora"))  # the adapter /test loaded stays loaded for the next prompt
    assert training.test(task.id, None, True, "what colour is the sky", 1, 0.0, 0)["response"] == answer
    assert ADAPTERS.get(store.latest("colours-lora")) is loaded
    started = training.merge(task.id, None, True, "/models/colours-merged")  # a task, as it writes a whole model
    assert started["model_name"] == "colours-merged" and started["status"] == "pending"
    merging = service.get(started["task_id"], None, True)
    runner.run(merging.id, merging.dispatch)
    merged = service.get(merging.id, None, True)
    assert merged.status == "completed", merged.error
    assert merged.result["model_name"] == "colours-merged" and merged.result["registered_version"]
    assert merged.result["source_task_id"] == task.id
    from kiln.finetune import generate, load_merged, load_tokenizer

    path = store.latest("colours-merged").path
    assert generate(load_merged("causal-lm", path), load_tokenizer(path), "what colour is the sky", 1) == answer


def test_an_image_classifier_trains_in_dagster_registers_and_is_served(tasks):
    """An uploaded .zip of digit images: the run fine-tunes EfficientNet-Lite0, the candidate is registered in
    MLflow past the champion gate and imported into BentoML's store, which is what the gateway serves by name."""
    from bentos.models import served_models
    from tests.digit_images import digit_pngs, store_lite0, zip_bytes

    service, runner, database = tasks
    store_lite0(ModelStore(get_settings().model_store_dir))
    archive = service.services.save_bytes(zip_bytes(digit_pngs()), "digits.zip", "application/zip", None, status="uploaded")
    params = {"model_type": "image_classifier", "base_model": "efficientnet-lite0", "dataset_path": archive.id,
              "output_dir": "/models/digit-images", "epochs": 2, "batch_size": 8, "learning_rate": 0.003,
              "image_size": 128}
    task = service.create(None, "train images", "training", params)
    runner.run(task.id, task.dispatch)
    done = service.get(task.id, None, True)
    assert done.status == "completed", done.error
    status = training_status(done, database)
    assert status["current_step"] == status["total_steps"] == 8 and status["metrics"]["accuracy"] > 0.5
    assert status["registered_version"] and status["served"] is True, status
    served = served_models()["digit-images"]
    assert served.task == "image-classification" and served.registry_version == status["registered_version"]
