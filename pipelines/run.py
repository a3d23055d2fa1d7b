"""Materialize the model pipeline for catalog models in the persistent Dagster instance (``kiln pipeline``).

Runs are recorded in DAGSTER_HOME, so they show in the Dagster UI like runs launched from it.
"""

from __future__ import annotations

import argparse
import sys

import dagster as dg

from kiln.catalog import load_catalog
from kiln.settings import get_settings
from pipelines.definitions import defs

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def run_pipeline(models: list[str], instance: dg.DagsterInstance | None = None) -> dict[str, bool]:
    job = defs.resolve_job_def("model_pipeline")
    instance = instance or dg.DagsterInstance.get()
    outcome = {}
    for name in models:
        print(f"==> kiln pipeline: {name}", flush=True)
        result = job.execute_in_process(
            partition_key=name, instance=instance, run_config=QUIET_LOGS, raise_on_error=False
        )
        outcome[name] = result.success
        for event in result.get_asset_materialization_events():
            meta = event.materialization.metadata
            facts = {k: getattr(v, "value", v) for k, v in meta.items() if k in SUMMARY_KEYS}
            print(f"    {event.asset_key.to_user_string():<17} {facts}", flush=True)
        print(f"<== {name}: {'ok' if result.success else 'FAILED (see the log above)'}", flush=True)
    return outcome


SUMMARY_KEYS = {"version", "reused", "accuracy", "pair_ranking_accuracy", "reason", "bento_model"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiln pipeline", description=__doc__)
    parser.add_argument("--model", action="append", help="catalog model (repeatable); default: all")
    args = parser.parse_args(argv)
    names = load_catalog(get_settings().catalog_file).names()
    unknown = sorted(set(args.model or []) - set(names))
    if unknown:
        print(f"Unknown model(s) {unknown}. Catalog models: {names}", file=sys.stderr)
        return 2
    outcome = run_pipeline(args.model or names)
    return 0 if all(outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
