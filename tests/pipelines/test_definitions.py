import dagster as dg

from kiln.catalog import load_catalog
from kiln.settings import get_settings
from pipelines.definitions import defs


def test_definitions_load_and_every_job_resolves():
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    for job in repository.get_all_jobs():
        assert defs.resolve_job_def(job.name) is not None
    assert "model_pipeline" in {job.name for job in repository.get_all_jobs()}


def test_asset_graph_and_partitions_follow_the_catalog():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {"raw_model", "evaluation", "registered_model", "bento_model"}
    partitions = graph.get(dg.AssetKey("raw_model")).partitions_def
    assert partitions.get_partition_keys() == load_catalog(get_settings().catalog_file).names()
    assert graph.get(dg.AssetKey("bento_model")).parent_keys == {dg.AssetKey("registered_model")}


def test_evaluation_has_a_blocking_gate():
    specs = {spec.name: spec for spec in defs.resolve_assets_def(dg.AssetKey("evaluation")).check_specs}
    assert specs["meets_floor"].blocking
