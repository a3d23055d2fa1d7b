"""Run one job of the code location in the persistent Dagster instance and report it as JSON lines on
stdout, for Kiln tasks when the Dagster webserver is not running (with it, tasks launch through its
GraphQL API instead). The run is recorded in DAGSTER_HOME like any other, so it shows in the Dagster UI.

    python -m pipelines.launch --job model_pipeline --partition minilm --run-id <uuid> [--run-config JSON]

Lines: {"event": "step", "step", "status"} as steps end, then {"event": "done", "status", "success"}.
A line "cancel" on stdin (or SIGTERM) stops the run at Dagster's next interrupt point, and the run is
recorded as canceled.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

import dagster as dg

from pipelines.definitions import defs
from pipelines.interrupts import sigterm_kept
from pipelines.partitions import sync_catalog_partitions

STEP_EVENTS = {"STEP_SUCCESS": "success", "STEP_FAILURE": "failure", "STEP_SKIPPED": "skipped"}
LAUNCH_TAG = "kiln/launch_id"


# Reconstructable targets, one per job: with the Celery executor the workers rebuild the job from these.
def model_pipeline() -> dg.JobDefinition:
    return defs.resolve_job_def("model_pipeline")


def training() -> dg.JobDefinition:
    return defs.resolve_job_def("training")


def export() -> dg.JobDefinition:
    return defs.resolve_job_def("export")


def evaluate() -> dg.JobDefinition:
    return defs.resolve_job_def("evaluate")


def package() -> dg.JobDefinition:
    return defs.resolve_job_def("package")


def user_training() -> dg.JobDefinition:
    return defs.resolve_job_def("user_training")


RECONSTRUCTABLE = {"model_pipeline": model_pipeline, "training": training, "export": export, "evaluate": evaluate,
                   "package": package, "user_training": user_training}


def execute(job_name: str, instance: dg.DagsterInstance, run_config: dict, partition: str | None, run_id: str,
            tags: dict[str, str]):
    """In this process, or, with a Celery broker configured (KILN_DAGSTER_CELERY_BROKER), step by step on the
    Celery workers (a reconstructable job: the workers import it themselves)."""
    from kiln.settings import get_settings

    if get_settings().dagster_celery_broker and job_name in RECONSTRUCTABLE:
        from dagster._core.storage.tags import PARTITION_NAME_TAG

        # execute_job picks its own run id: the run carries ours as a tag, and follow_steps finds it by it
        run_tags = {**tags, LAUNCH_TAG: run_id, **({PARTITION_NAME_TAG: partition} if partition else {})}
        return dg.execute_job(dg.reconstructable(RECONSTRUCTABLE[job_name]), instance=instance, run_config=run_config,
                              tags=run_tags, raise_on_error=False)
    job = defs.resolve_job_def(job_name)
    with sigterm_kept():  # this process is stopped with SIGTERM when its task is cancelled
        return job.execute_in_process(run_config=run_config, instance=instance, partition_key=partition, run_id=run_id,
                                      tags=tags, raise_on_error=False)


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def find_run(instance: dg.DagsterInstance, launch_id: str) -> dg.DagsterRun | None:
    """The run of this launch: its id is ours (in process), or it carries ours as a tag (Celery)."""
    run = instance.get_run_by_id(launch_id)
    if run is None:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={LAUNCH_TAG: launch_id}), limit=1)
        run = runs[0] if runs else None
    return run


def follow_steps(instance: dg.DagsterInstance, launch_id: str, stop: threading.Event) -> None:
    """Print the run's id once it exists, then each step's end as it is written to the event log."""
    cursor, seen, run_id = None, set(), None
    while True:
        last = stop.wait(0.5)  # one more read after the run ended: its last steps
        if run_id is None:
            run = find_run(instance, launch_id)
            if run is None:
                if last:
                    return
                continue
            run_id = run.run_id
            emit(event="run", run_id=run_id)
        try:
            connection = instance.get_records_for_run(run_id, cursor=cursor)
        except Exception:  # the run is not in the storage yet
            if last:
                return
            continue
        cursor = connection.cursor
        for record in connection.records:
            entry = record.event_log_entry
            kind = entry.dagster_event.event_type_value if entry.dagster_event else None
            if kind in STEP_EVENTS and (entry.step_key, kind) not in seen:
                seen.add((entry.step_key, kind))
                emit(event="step", step=entry.step_key, status=STEP_EVENTS[kind])
        if last and not connection.has_more:
            return


def listen_for_cancel(cancelled: threading.Event) -> None:
    """The parent asks to stop with a line on stdin; Dagster's interrupt handling then ends the steps."""
    for line in sys.stdin:
        if line.strip() == "cancel":
            cancelled.set()
            os.kill(os.getpid(), signal.SIGINT)
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.launch", description=__doc__)
    parser.add_argument("--job", required=True)
    parser.add_argument("--partition")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--run-config", default="{}")
    parser.add_argument("--tag", action="append", default=[], help="key=value (repeatable)")
    args = parser.parse_args(argv)

    cancelled = threading.Event()

    def interrupt(signum, frame):  # noqa: ARG001
        cancelled.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    threading.Thread(target=listen_for_cancel, args=(cancelled,), daemon=True).start()
    instance = dg.DagsterInstance.get()
    if args.partition:
        sync_catalog_partitions(instance, [args.partition])
    tags = dict(tag.split("=", 1) for tag in args.tag)
    stop = threading.Event()
    follower = threading.Thread(target=follow_steps, args=(instance, args.run_id, stop), daemon=True)
    follower.start()
    try:
        result = execute(args.job, instance, json.loads(args.run_config), args.partition, args.run_id, tags)
    except KeyboardInterrupt:
        cancelled.set()
        result = None
    stop.set()
    # its last read prints the run's final steps before the done line; on a busy machine that takes a while
    follower.join(timeout=120)
    run = find_run(instance, args.run_id)
    if cancelled.is_set() and run is not None and run.status != dg.DagsterRunStatus.SUCCESS:
        # Dagster ends an interrupted run as a failure; it was a cancellation
        instance.report_run_canceled(run, message="Cancelled by the Kiln task that started it")
        emit(event="done", status="CANCELED", success=False)
        return 130
    success = bool(result and result.success)
    emit(event="done", status=run.status.value if run else ("SUCCESS" if success else "FAILURE"), success=success)
    return 0 if success else 1


if __name__ == "__main__":
    sys.exit(main())
