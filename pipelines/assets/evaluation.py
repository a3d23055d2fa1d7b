"""Stage 2: evaluate each model on held-out data, log the metrics to its MLflow run, and gate on them."""


import dagster as dg

from kiln.engines import load_engine
from kiln.evaluation import evaluate
from kiln.store import StoredModel
from pipelines.partitions import catalog_models
from pipelines.resources import KilnWorkspace, MLflowTracking


@dg.asset(
    partitions_def=catalog_models,
    group_name="evaluate",
    kinds={"mlflow"},
    description="Task metrics on a held-out split (accuracy for classifiers, pair ranking for embeddings).",
    check_specs=[
        dg.AssetCheckSpec(
            "meets_floor",
            asset="evaluation",
            blocking=True,  # a model below its floor is never registered or served
            description="The primary metric clears the catalog's min_metric.",
        )
    ],
)
def evaluation(
    context: dg.AssetExecutionContext, raw_model: StoredModel, kiln: KilnWorkspace, mlflow: MLflowTracking
):
    entry = kiln.catalog().get(context.partition_key)
    tracker = mlflow.tracker()
    engine = load_engine(raw_model.task, raw_model.path, raw_model.name)
    metrics = evaluate(engine, kiln.workspace)
    run_id = raw_model.info["mlflow_run_id"]
    with tracker.run(run_name=entry.name, run_id=run_id):
        tracker.log_metrics({f"eval_{key}": value for key, value in metrics.items()})
    context.log.info(f"{entry.name}: {metrics}")
    value = metrics[entry.primary_metric]
    yield dg.Output(
        metrics,
        metadata={
            **{key: dg.MetadataValue.float(round(value, 4)) for key, value in metrics.items()},
            "primary_metric": entry.primary_metric,
            "parameters": engine.parameters,
            "mlflow_run": dg.MetadataValue.url(tracker.run_url(run_id)),
        },
    )
    yield dg.AssetCheckResult(
        check_name="meets_floor",
        passed=value >= entry.min_metric,
        metadata={"metric": entry.primary_metric, "value": value, "floor": entry.min_metric},
        description=f"{entry.primary_metric}={value:.4f}, floor {entry.min_metric}",
    )
