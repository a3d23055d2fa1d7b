"""Stage: evaluate each candidate on held-out data, log metrics and plots to its MLflow run, gate on them,
and render the papermill report notebook."""


from pathlib import Path

import dagster as dg

from kiln.engines import load_engine
from kiln.evaluation import evaluate
from kiln.generation.models import GENERATION_TASKS
from kiln.store import StoredModel
from pipelines.partitions import catalog_models
from pipelines.resources import KilnWorkspace, MLflowTracking

REPORT_NOTEBOOK = "notebooks/evaluation_report.ipynb"


class EvaluationConfig(dg.Config):
    """Generative models only: how many samples per class the judge reads (the gate's figure is over 100)."""

    generation_samples_per_class: int = 100


@dg.asset(
    partitions_def=catalog_models,
    group_name="evaluate",
    kinds={"mlflow"},
    description=(
        "Task metrics on a held-out split: accuracy, F1 and a confusion-matrix plot for classifiers, pair "
        "ranking for embeddings."
    ),
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
    context: dg.AssetExecutionContext, config: EvaluationConfig, finetuned_model: StoredModel, kiln: KilnWorkspace,
    mlflow: MLflowTracking,
):
    entry = kiln.catalog().get(context.partition_key)
    tracker = mlflow.tracker(context)
    candidate = finetuned_model
    if candidate.task in GENERATION_TASKS:
        yield from _evaluate_generation(context, entry, candidate, kiln, tracker, config.generation_samples_per_class)
        return
    engine = load_engine(candidate.task, candidate.path, entry.name)
    metrics = evaluate(engine, kiln.workspace, candidate.info.get("dataset_path"))
    run_id = candidate.info["mlflow_run_id"]
    with tracker.run(run_name=entry.name, run_id=run_id):
        tracker.log_metrics({f"eval_{key}": value for key, value in metrics.items()})
        if hasattr(engine, "labels") and f"confusion_{engine.labels[0]}_{engine.labels[0]}" in metrics:
            import mlflow as mlflow_lib

            from kiln.evaluation import confusion_matrix_figure

            figure = confusion_matrix_figure(metrics, engine.labels, f"{entry.name}: accuracy {metrics['accuracy']:.3f}")
            mlflow_lib.log_figure(figure, "evaluation/confusion_matrix.png")
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


def _evaluate_generation(context, entry, candidate: StoredModel, kiln: KilnWorkspace, tracker, per_class: int):
    """The digits diffusion model: conditional accuracy as read by the `example` classifier (100 samples per
    class, DDIM 25 steps, the model's default guidance), per-digit accuracies, and a sample grid PNG in its MLflow run."""
    from kiln.generation.evaluation import evaluate_digits_generation, judge_engine, judge_model, sample_grid

    if not (candidate.path / "kiln-generation.json").is_file():
        raise dg.Failure(f"'{entry.name}' is a {candidate.task} model Kiln does not train; no evaluation is defined "
                         "for hub pipelines (they are served as they are)")
    store = kiln.store()
    candidate = store.find(candidate.name, candidate.fingerprint) or candidate  # its manifest as stored now
    judged_by = judge_model(store)
    # Sampling 1,000 images takes minutes: the same model judged by the same judge keeps its figures (and its run
    # keeps its sample grid), as the other stages reuse what did not change.
    key = {"model_sha256": candidate.sha256, "judge": judged_by.version, "judge_sha256": judged_by.sha256,
           "per_class": per_class}
    earlier = candidate.info.get("generation_evaluation") or {}
    run_id = candidate.info["mlflow_run_id"]
    reused = earlier.get("key") == key
    if reused:
        metrics = earlier["metrics"]
    else:
        judge = judge_engine(store)
        metrics, samples = evaluate_digits_generation(candidate.path, judge, per_class=per_class)
        with tracker.run(run_name=entry.name, run_id=run_id):
            tracker.log_metrics({f"eval_{name}": v for name, v in metrics.items()})
            import mlflow as mlflow_lib

            title = f"{entry.name}: conditional accuracy {metrics[entry.primary_metric]:.3f}"
            mlflow_lib.log_figure(sample_grid(samples, per_class, title=title), "evaluation/sample_grid.png")
        store.set_info(candidate, generation_evaluation={"key": key, "metrics": metrics})
    value = metrics[entry.primary_metric]
    context.log.info(f"{entry.name}: {metrics}{' (reused: same model, same judge)' if reused else ''}")
    yield dg.Output(
        metrics,
        metadata={
            **{key: dg.MetadataValue.float(round(v, 4)) for key, v in metrics.items()},
            "primary_metric": entry.primary_metric,
            "judge": f"{judged_by.name} {judged_by.version}",
            "reused": reused,
            "mlflow_run": dg.MetadataValue.url(tracker.run_url(run_id)),
            "mlflow_artifact": "evaluation/sample_grid.png",
        },
    )
    yield dg.AssetCheckResult(
        check_name="meets_floor",
        passed=value >= entry.min_metric,
        metadata={"metric": entry.primary_metric, "value": value, "floor": entry.min_metric},
        description=f"{entry.primary_metric}={value:.4f}, floor {entry.min_metric}",
    )


@dg.asset(
    partitions_def=catalog_models,
    group_name="evaluate",
    kinds={"jupyter", "mlflow"},
    deps=["evaluation"],
    description=(
        f"The evaluation report: {REPORT_NOTEBOOK} executed with papermill for this model, stored as an MLflow "
        "artifact (notebook and HTML) of the model's run."
    ),
)
def evaluation_report(
    context: dg.AssetExecutionContext, finetuned_model: StoredModel, kiln: KilnWorkspace, mlflow: MLflowTracking
) -> dg.Output[str]:
    entry = kiln.catalog().get(context.partition_key)
    candidate = finetuned_model
    executed, html = render_report(kiln.workspace, candidate, entry.name, kiln.scratch("reports") / entry.name)
    tracker = mlflow.tracker(context)
    run_id = candidate.info["mlflow_run_id"]
    with tracker.run(run_name=entry.name, run_id=run_id):
        import mlflow as mlflow_lib

        mlflow_lib.log_artifact(str(executed), "reports")
        if html is not None:
            mlflow_lib.log_artifact(str(html), "reports")
    context.log.info(f"{entry.name}: report {executed}")
    return dg.Output(
        str(executed),
        metadata={
            "notebook": dg.MetadataValue.notebook(str(executed)),
            "html": dg.MetadataValue.path(str(html)) if html else "nbconvert unavailable",
            "mlflow_run": dg.MetadataValue.url(tracker.run_url(run_id)),
            "mlflow_artifact": f"reports/{executed.name}",
        },
    )


def render_report(workspace: Path, model: StoredModel, name: str, out_dir: Path) -> tuple[Path, Path | None]:
    """Execute the report notebook for ``model`` with papermill into ``out_dir``: (executed notebook, HTML copy)."""
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / f"evaluation_report-{model.version}.ipynb"
    papermill.execute_notebook(
        str(workspace / REPORT_NOTEBOOK),
        str(executed),
        parameters={
            "model_name": name,
            "model_path": str(model.path),
            "task": model.task,
            "workspace": str(workspace),
            "dataset_path": model.info.get("dataset_path") or "",
        },
        kernel_name="python3",
        cwd=str(out_dir),  # never the checkout: a folder named onnx there would shadow the onnx package
        progress_bar=False,
    )
    return executed, _to_html(executed)


def _to_html(notebook):
    """An HTML copy that the MLflow UI shows inline; None when nbconvert is not installed."""
    try:
        import nbformat
        from nbconvert import HTMLExporter
    except ImportError:
        return None
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(notebook), as_version=4))
    target = notebook.with_suffix(".html")
    target.write_text(body)
    return target
