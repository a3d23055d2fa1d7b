"""The Dagster instance Kiln installs in DAGSTER_HOME: its dagster.yaml passes dagster's own schema and says
what the UI needs (no telemetry, no new-user modal, runs queued two at a time on two cores)."""

import os
from pathlib import Path

import dagster as dg
from dagster._core.instance.config import dagster_instance_config

from kiln.settings import WORKSPACE


def test_dagster_yaml_is_installed_and_valid_for_this_dagster():
    home = Path(os.environ["DAGSTER_HOME"])  # set by kiln.settings.configure_environment (tests/conftest.py)
    assert (home / "dagster.yaml").read_bytes() == (WORKSPACE / "dagster.yaml").read_bytes()
    config, _ = dagster_instance_config(str(home))  # raises DagsterInvalidConfigError on an unknown or mistyped key
    assert config["nux"] == {"enabled": False} and config["telemetry"] == {"enabled": False}


def test_the_ui_opens_without_the_community_modal():
    with dg.DagsterInstance.from_config(os.environ["DAGSTER_HOME"]) as instance:
        assert instance.nux_enabled is False  # what the webserver asks before showing "Join the Dagster community"
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 2
