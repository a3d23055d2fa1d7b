"""Materialize the model pipeline for catalog models in the persistent Dagster instance (``kiln pipeline``).

Runs are recorded in DAGSTER_HOME, so they show in the Dagster UI like runs launched from it. Missing
catalog partitions are added first; after the models, the serving bundle (bento) is built once.
"""

from __future__ import annotations

import argparse
import sys

import dagster as dg

from kiln.catalog import load_catalog
from kiln.settings import get_settings
from pipelines.definitions import defs
from pipelines.interrupts import sigterm_kept
from pipelines.partitions import sync_catalog_partitions

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
SUMMARY_KEYS = {
    "version", "reused", "accuracy", "pair_ranking_accuracy", "reason", "bento_model", "int8_speedup",
    "int8_mean_cosine", "int8_accuracy_delta", "validation_accuracy", "trainable_share_percent", "train_seconds",
    "bento", "fine_tuned",
}


def run_pipeline(
    models: list[str],
    instance: dg.DagsterInstance | None = None,
    run_config: dict | None = None,
    build_bento: bool = False,
) -> dict[str, bool]:
    """Run ``model_pipeline`` per model. A candidate that loses to the champion is a success (not promoted)."""
    job = defs.resolve_job_def("model_pipeline")
    instance = instance or dg.DagsterInstance.get()
    added = sync_catalog_partitions(instance, load_catalog(get_settings().catalog_file).names())
    if added:
        print(f"==> added partitions {added}", flush=True)
    outcome = {}
    for name in models:
        print(f"==> kiln pipeline: {name}", flush=True)
        with sigterm_kept():
            result = job.execute_in_process(
                partition_key=name, instance=instance, run_config=QUIET_LOGS | (run_config or {}), raise_on_error=False
            )
        _print_summary(result)
        failed_checks = {c.check_name for c in result.get_asset_check_evaluations() if not c.passed}
        kept_champion = failed_checks == {"champion_gate"} and _only_gate_failed(result)
        outcome[name] = result.success or kept_champion
        verdict = "ok" if result.success else "ok: candidate not promoted, champion kept" if kept_champion else "FAILED (see the log above)"
        print(f"<== {name}: {verdict}", flush=True)
    if build_bento and all(outcome.values()):
        print("==> kiln pipeline: bento", flush=True)
        with sigterm_kept():
            result = defs.resolve_job_def("package").execute_in_process(instance=instance, run_config=QUIET_LOGS,
                                                                         raise_on_error=False)
        _print_summary(result)
        outcome["bento"] = result.success
    return outcome


def _print_summary(result) -> None:
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        facts = {k: getattr(v, "value", v) for k, v in meta.items() if k in SUMMARY_KEYS}
        print(f"    {event.asset_key.to_user_string():<17} {facts}", flush=True)


def _only_gate_failed(result) -> bool:
    """True when every failed step failed because the champion gate (a blocking check) did not pass."""
    failures = [e for e in result.all_events if e.is_step_failure]
    return all("champion_gate" in str(e.event_specific_data.error) for e in failures)


def run_distributed(models: list[str], build_bento: bool) -> dict[str, bool]:
    """Scale-out (KILN_DAGSTER_CELERY_BROKER): every model's run at once, each in its own launch process
    whose steps go to the Celery workers; the runs are recorded in the shared Dagster storage."""
    import json
    import subprocess
    import uuid

    def launch(job: str, partition: str | None) -> subprocess.Popen:
        command = [sys.executable, "-m", "pipelines.launch", "--job", job, "--run-id", str(uuid.uuid4())]
        return subprocess.Popen(command + (["--partition", partition] if partition else []), stdout=subprocess.PIPE, text=True)

    def outcome_of(process: subprocess.Popen) -> bool:
        done = False
        for line in process.stdout:
            if line.startswith("{"):
                event = json.loads(line)
                done = event.get("event") == "done" and (event["success"] or event["status"] == "SUCCESS")
        process.wait()
        return done

    running = {name: launch("model_pipeline", name) for name in models}
    print(f"==> kiln pipeline: {len(running)} runs on the Celery workers: {', '.join(running)}", flush=True)
    outcome = {name: outcome_of(process) for name, process in running.items()}
    for name, ok in outcome.items():
        print(f"<== {name}: {'ok' if ok else 'FAILED (see the run in the Dagster UI)'}", flush=True)
    if build_bento and all(outcome.values()):
        outcome["bento"] = outcome_of(launch("package", None))
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiln pipeline", description=__doc__)
    parser.add_argument("--model", action="append", help="catalog model (repeatable); default: all")
    parser.add_argument("--no-bento", action="store_true", help="do not build the serving bundle afterwards")
    args = parser.parse_args(argv)
    names = load_catalog(get_settings().catalog_file).names()
    unknown = sorted(set(args.model or []) - set(names))
    if unknown:
        print(f"Unknown model(s) {unknown}. Catalog models: {names}", file=sys.stderr)
        return 2
    if get_settings().dagster_celery_broker:
        outcome = run_distributed(args.model or names, build_bento=not args.no_bento)
    else:
        outcome = run_pipeline(args.model or names, build_bento=not args.no_bento)
    return 0 if all(outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
