"""The scaling predictor: a forecaster per served model, trained on Kiln's own recorded traffic (the model
worker's minute samples), evaluated on the held-out tail, logged to MLflow and registered with the
champion gate. The model worker (``KILN_PREDICTIVE_SCALING``) and ``/ml/scaling/*`` use the champion."""

import json

import dagster as dg
from pydantic import Field

from kiln.scaling import predictor as predictors
from kiln.settings import get_settings
from pipelines.resources import KilnWorkspace, MLflowTracking


class ScalingPredictorConfig(dg.Config):
    training_hours: int = Field(168, ge=1, le=24 * 90, description="Hours of recorded traffic to train on")
    force_retrain: bool = Field(False, description="Retrain even when no traffic was recorded since the last training")


@dg.asset(
    group_name="scaling",
    kinds={"scikitlearn", "mlflow"},
    description=(
        "Per served model: a request-rate forecaster (persistence or gradient boosting on lag and time-of-day "
        "features, chosen by validation MAE) and its measured throughput per instance, from the traffic samples in "
        "Kiln's records database. Evaluated on the held-out tail (MAE, MAPE, instance-count accuracy)."
    ),
    check_specs=[dg.AssetCheckSpec(
        "enough_history", asset="scaling_predictor",
        description="At least one served model had enough traffic samples to train a forecaster.",
    )],
)
def scaling_predictor(context: dg.AssetExecutionContext, config: ScalingPredictorConfig, kiln: KilnWorkspace,
                      mlflow: MLflowTracking):
    settings = get_settings()
    database = kiln.records()
    store = kiln.store()
    params = predictors.training_params(settings, config.training_hours)
    fingerprint = predictors.data_fingerprint(database, config.training_hours, params)
    existing = store.find(predictors.NAME, fingerprint)
    if existing is not None and not config.force_retrain:
        context.log.info(f"no new traffic since version {existing.version}: reused (force_retrain to retrain)")
        yield dg.Output(existing.to_json(), metadata={"version": existing.version, "reused": True,
                                                      "registry_version": existing.info.get("registry_version", "")})
        yield dg.AssetCheckResult(check_name="enough_history", passed=True, description="reused")
        return
    predictor = predictors.train(database, config.training_hours, params["horizon_minutes"], params["min_samples"],
                                 params["target_utilization"], params["max_instances"],
                                 cycle_seconds=params["cycle_seconds"])
    summary = predictor.summary()
    if not predictor.models:
        reasons = predictor.skipped or {"(all)": "no traffic samples recorded yet"}
        context.log.warning(f"too little history to train: {reasons}")
        yield dg.Output(None, metadata={"trained": False, "skipped": dg.MetadataValue.json(reasons)})
        yield dg.AssetCheckResult(check_name="enough_history", passed=False,
                                  description="; ".join(f"{k}: {v}" for k, v in reasons.items()))
        return
    model = predictors.save(store, predictor, fingerprint, replace=config.force_retrain)
    tracker = mlflow.tracker(context)
    with tracker.run(run_name=predictors.NAME, tags={"kiln.model": predictors.NAME, "kiln.stage": "train"}) as run:
        run_id = run.info.run_id
        tracker.log_params({"training_hours": config.training_hours, **{k: v for k, v in params.items()},
                            "models": ",".join(sorted(predictor.models))})
        metrics = {"accuracy": predictor.accuracy, "training_seconds": predictor.training_seconds}
        for name, fitted in predictor.models.items():
            metrics.update({f"{name}.{key}": value for key, value in fitted.evaluation.items()})
        tracker.log_metrics(metrics)
        import mlflow as mlflow_lib

        mlflow_lib.log_text(json.dumps(summary, indent=2, default=str), "scaling/summary.json")
    registration = tracker.register(model, run_id, "accuracy", predictor.accuracy)
    store.set_info(model, mlflow_run_id=run_id, registry_version=registration.version,
                   champion=registration.champion_version == registration.version,
                   champion_version=registration.champion_version, accuracy=predictor.accuracy)
    context.log.info(f"{predictors.NAME}: {registration.reason}")
    yield dg.Output(model.to_json(), metadata={
        "version": model.version, "registry_version": registration.version, "champion_moved": registration.champion_moved,
        "accuracy": predictor.accuracy, "models": dg.MetadataValue.json(summary["models"]),
        "skipped": dg.MetadataValue.json(predictor.skipped), "reason": registration.reason,
        "training_seconds": round(predictor.training_seconds, 3), "mlflow_run": dg.MetadataValue.url(tracker.run_url(run_id)),
    })
    yield dg.AssetCheckResult(check_name="enough_history", passed=True,
                              metadata={"models": len(predictor.models), "skipped": len(predictor.skipped)})
