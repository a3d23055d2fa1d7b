import dagster as dg

from kiln.catalog import load_catalog
from kiln.settings import get_settings
from pipelines.definitions import defs
from pipelines.partitions import CATALOG_PARTITIONS, sync_catalog_partitions

MODEL_ASSETS = {
    "raw_model", "sentiment_dataset", "finetuned_model", "optimized_model", "evaluation", "evaluation_report",
    "registered_model", "bento_model",
}


def test_definitions_load_and_every_job_resolves_with_a_description():
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    jobs = {job.name: job for job in repository.get_all_jobs() if not job.name.startswith("__")}
    assert {"model_pipeline", "training", "export", "evaluate", "package"} <= set(jobs)
    assert all(job.description for job in jobs.values())


def test_asset_graph_follows_the_design():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == MODEL_ASSETS | {"bento", "scaling_predictor", "user_trained_model", "user_registered_model"}
    parents = lambda name: {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}  # noqa: E731
    assert parents("finetuned_model") == {"raw_model", "sentiment_dataset"}
    assert parents("evaluation") == {"finetuned_model"}
    assert parents("optimized_model") == {"finetuned_model"}
    assert parents("registered_model") == {"finetuned_model", "evaluation"}
    assert parents("bento_model") == {"registered_model", "optimized_model"}
    assert parents("bento") == {"bento_model"}
    assert parents("scaling_predictor") == set()  # it learns from Kiln's records, not from another asset
    assert parents("user_trained_model") == set()  # a request's base model and data come in its config
    assert parents("user_registered_model") == {"user_trained_model"}


def test_partitions_are_dynamic_and_follow_the_catalog():
    graph = defs.resolve_asset_graph()
    partitions = graph.get(dg.AssetKey("raw_model")).partitions_def
    assert isinstance(partitions, dg.DynamicPartitionsDefinition) and partitions.name == CATALOG_PARTITIONS
    instance = dg.DagsterInstance.ephemeral()
    names = load_catalog(get_settings().catalog_file).names()
    assert sync_catalog_partitions(instance, names) == names
    assert sync_catalog_partitions(instance, names + ["added-at-run-time"]) == ["added-at-run-time"]
    assert partitions.get_partition_keys(dynamic_partitions_store=instance) == names + ["added-at-run-time"]


def test_gates_are_blocking_checks():
    def specs(asset):
        return {spec.name: spec for spec in defs.resolve_assets_def(dg.AssetKey(asset)).check_specs}

    assert specs("evaluation")["meets_floor"].blocking
    assert specs("registered_model")["champion_gate"].blocking
    quality = specs("sentiment_dataset")
    assert set(quality) == {"schema", "no_nulls", "label_balance", "text_length", "duplicate_rate"}
    assert all(spec.blocking for spec in quality.values())
    assert specs("user_trained_model")["beats_chance"].blocking


def test_nightly_schedule_is_off_and_sensors_exist():
    repository = defs.get_repository_def()
    schedule = repository.get_schedule_def("nightly_reevaluation")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED and schedule.job_name == "evaluate"
    sensors = {sensor.name: sensor for sensor in repository.sensor_defs}
    assert {"catalog_partitions_sensor", "champion_bento_sensor"} <= set(sensors)
    assert sensors["champion_bento_sensor"].job_name == "package"


def test_catalog_sensor_adds_missing_partitions():
    from pipelines.jobs import catalog_partitions_sensor

    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_sensor_context(instance=instance, resources={"kiln": defs.resources["kiln"]})
    result = catalog_partitions_sensor(context)
    requested = result.dynamic_partitions_requests[0]
    assert list(requested.partition_keys) == load_catalog(get_settings().catalog_file).names()
