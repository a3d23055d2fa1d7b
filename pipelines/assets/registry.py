"""Stage 3: register the candidate in MLflow (alias ``champion`` moves only on improvement), then make
the champion servable in BentoML's model store."""


import dagster as dg

from kiln.errors import KilnError
from kiln.store import StoredModel
from kiln.tracking import DAGSTER_RUN_TAG, Registration
from pipelines.partitions import catalog_models
from pipelines.resources import TRAINING_DAGSTER_RUN_LABEL, BentoModelStore, KilnWorkspace, MLflowTracking


@dg.asset(
    partitions_def=catalog_models,
    group_name="register",
    kinds={"mlflow"},
    description="The model version in the MLflow registry; the `champion` alias moves only when it is better.",
    check_specs=[
        dg.AssetCheckSpec(
            "champion_gate",
            asset="registered_model",
            blocking=True,  # a candidate that did not become champion is not packaged
            description="The candidate is the champion: it beat the previous one on the primary metric (or already was it).",
        )
    ],
)
def registered_model(
    context: dg.AssetExecutionContext,
    finetuned_model: StoredModel,
    evaluation: dict[str, float],
    kiln: KilnWorkspace,
    mlflow: MLflowTracking,
):
    entry = kiln.catalog().get(context.partition_key)
    tracker = mlflow.tracker(context)
    candidate = finetuned_model
    registration = tracker.register(
        candidate, candidate.info["mlflow_run_id"], entry.primary_metric, evaluation[entry.primary_metric]
    )
    context.log.info(f"{entry.name}: {registration.reason}")
    mark_champion(kiln.store(), candidate, registration)
    yield dg.Output(
        registration,
        metadata={
            "registered_model": entry.name,
            "version": registration.version,
            "champion_version": registration.champion_version,
            "champion_moved": registration.champion_moved,
            "reason": registration.reason,
            "reused": registration.reused,
            "mlflow_run": dg.MetadataValue.url(tracker.run_url(registration.run_id)),
        },
    )
    yield dg.AssetCheckResult(
        check_name="champion_gate",
        passed=registration.champion_version == registration.version,
        metadata={"reason": registration.reason, "candidate_version": registration.version,
                  "champion_version": registration.champion_version},
        description=registration.reason,
    )


@dg.asset(
    partitions_def=catalog_models,
    group_name="package",
    kinds={"bentoml"},
    deps=["optimized_model"],  # its ONNX variants go into the bento model, and the gated one is served
    description=(
        "The champion's weights in BentoML's model store (hard links), labelled with its MLflow run and the "
        "Dagster runs that packaged it (dagster_run_id) and trained or fetched it (training_dagster_run_id), "
        "with its ONNX variants and the one that passed the catalog's agreement gate (serve_variant)."
    ),
)
def bento_model(
    context: dg.AssetExecutionContext, registered_model: Registration, kiln: KilnWorkspace, bentoml: BentoModelStore,
    mlflow: MLflowTracking,
) -> dg.Output[str]:
    store = kiln.store()
    champion = next(
        (m for m in store.versions(context.partition_key) if m.sha256 == registered_model.champion_sha256), None
    )
    if champion is None:
        raise KilnError(
            f"The champion of '{context.partition_key}' (registry version {registered_model.champion_version}) "
            "is not in this workspace's model store; re-run raw_model for it."
        )
    trained_by = mlflow.tracker(context).run_tag(registered_model.champion_run_id, DAGSTER_RUN_TAG)
    optimized, variants = champion_variants(store, champion, kiln.catalog().get(context.partition_key))
    tag, reused = bentoml.import_champion(champion, registered_model, context.run.run_id, trained_by, optimized, variants)
    context.log.info(f"{context.partition_key}: BentoML model {tag} ({'reused' if reused else 'imported'})")
    import bentoml as bentoml_lib

    labels = bentoml_lib.models.get(tag).info.labels  # a reused model keeps the lineage of its first import
    return dg.Output(
        tag,
        metadata={
            "bento_model": tag,
            "registry_version": registered_model.champion_version,
            "mlflow_run_id": registered_model.champion_run_id,
            "dagster_run_id": labels.get(DAGSTER_RUN_TAG, ""),
            "training_dagster_run_id": labels.get(TRAINING_DAGSTER_RUN_LABEL, ""),
            "serve_variant": labels.get("serve_variant", "eager-fp32"),
            "reused": reused,
        },
    )


def champion_variants(store, champion: StoredModel, entry) -> tuple[StoredModel | None, dict | None]:
    """The champion's newest ONNX exports (made by optimized_model from this very version) and the gate's
    verdict on each; (None, None) when it has none."""
    import json

    from kiln.optimize import REPORT_FILE
    from kiln.serving.variants import Gate, select_variant

    exports = [m for m in store.versions(f"{champion.name}.onnx")
               if m.info.get("of") == champion.name and m.info.get("of_version") == champion.version
               and (m.path / REPORT_FILE).is_file()]
    if not exports:
        return None, None
    optimized = max(exports, key=lambda m: m.created)
    report = json.loads((optimized.path / REPORT_FILE).read_text())
    return optimized, select_variant(report, Gate(**entry.serve_gate.model_dump()))


def mark_champion(store, candidate: StoredModel, registration: Registration) -> None:
    """Record in the store's manifests which version is the champion: what is served straight from the store
    (generation models, the judge of the digits diffusion model) follows the gate, not the newest version."""
    for model in store.versions(candidate.name):
        is_champion = model.sha256 == registration.champion_sha256
        if bool(model.info.get("champion")) != is_champion:
            store.set_info(model, champion=is_champion)
