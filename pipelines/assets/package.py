"""Stage: the serving bundle. `bentoml build` of the gateway with every champion model, labelled with the
MLflow runs of those champions and the Dagster run that built it."""


import dagster as dg

from pipelines.resources import BentoModelStore, KilnWorkspace


@dg.asset(
    group_name="package",
    kinds={"bentoml"},
    deps=["bento_model"],
    description=(
        "A bento (bentofile.yaml: bentos.gateway:Gateway) holding the champion of every catalog model, labelled "
        "with their MLflow run ids and this Dagster run id. Rebuilt by the champion sensor when a champion changes."
    ),
)
def bento(context: dg.AssetExecutionContext, kiln: KilnWorkspace, bentoml: BentoModelStore) -> dg.Output[str]:
    built = bentoml.build_bento(kiln.workspace, context.run.run_id)
    context.log.info(f"bento {built.tag} with {built.models}")
    return dg.Output(
        built.tag,
        metadata={
            "bento": built.tag,
            "reused": built.reused,
            "models": dg.MetadataValue.json(built.models),
            "mlflow_run_ids": dg.MetadataValue.json(built.mlflow_runs),
            "dagster_run_id": context.run.run_id,
            "bento_path": dg.MetadataValue.path(built.path),
            "serve": f"bentoml serve {built.tag}",
        },
    )
