"""Stage: optimized variants of each candidate (ONNX fp32, ONNX dynamic int8), benchmarked against eager fp32."""


import json

import dagster as dg

from kiln.generation.models import GENERATION_TASKS
from kiln.store import StoredModel, fingerprint_of
from pipelines.partitions import catalog_models
from pipelines.resources import KilnWorkspace, MLflowTracking


class OptimizationConfig(dg.Config):
    benchmark_items: int = 256  # sentences (or digit images) every variant runs on
    batch_size: int = 32
    threads: int = 0  # 0: torch's default (one per core)
    rounds: int = 3  # interleaved timing rounds; the best of each variant counts (robust on a shared CPU)


def benchmark_inputs(task: str, workspace, count: int) -> tuple[list, list[int] | None]:
    """Held-out inputs for the benchmark: movie sentences (with labels for classifiers) or digit images."""
    if task == "classification":
        from kiln.recipes.digits import digits_split

        _, x_test, _, y_test = digits_split()
        return x_test[:count].tolist(), y_test[:count].tolist()
    from kiln.datasets import load_text_dataset

    test = load_text_dataset(workspace)["test"].select(range(min(count, 1060)))
    return list(test["text"]), list(test["label"]) if task == "text-classification" else None


@dg.asset(
    partitions_def=catalog_models,
    group_name="optimize",
    kinds={"onnx", "mlflow"},
    description=(
        "ONNX export (torch dynamo exporter, run with onnxruntime) and dynamic int8 quantization (per channel) of "
        "the candidate, each benchmarked against eager fp32 on the same inputs: throughput, p50 latency, size, "
        "and output agreement (cosine for embeddings, accuracy delta for classifiers)."
    ),
)
def optimized_model(
    context: dg.AssetExecutionContext,
    config: OptimizationConfig,
    finetuned_model: StoredModel,
    kiln: KilnWorkspace,
    mlflow: MLflowTracking,
) -> dg.Output[dict]:
    from kiln.engines import load_engine
    from kiln.optimize import RECIPE_VERSION, REPORT_FILE, optimize

    candidate = finetuned_model
    if candidate.task in GENERATION_TASKS:  # a diffusion sampler loops over its UNet: no single-call export here
        return dg.Output({"path": None, "skipped": f"no ONNX export for {candidate.task} models"},
                         metadata={"skipped": True, "reason": f"no ONNX export for {candidate.task} models"})
    name = f"{candidate.name}.onnx"
    fingerprint = fingerprint_of("optimize", RECIPE_VERSION, candidate.sha256, config.model_dump())
    store = kiln.store()
    stored = store.find(name, fingerprint)
    reused = stored is not None
    if stored is None:
        engine = load_engine(candidate.task, candidate.path, candidate.name)
        items, labels = benchmark_inputs(candidate.task, kiln.workspace, config.benchmark_items)
        info = {"source": "optimize", "of": candidate.name, "of_version": candidate.version, "mlflow_run_id": candidate.info.get("mlflow_run_id")}
        with store.stage(name, fingerprint, f"onnx:{candidate.task}", info) as staging:
            report = optimize(
                engine, candidate.path, staging, items, labels, config.batch_size, config.threads,
                log=context.log.info, rounds=config.rounds,
            )
        stored = store.find(name, fingerprint)
        tracker = mlflow.tracker(context)
        with tracker.run(run_name=candidate.name, run_id=candidate.info["mlflow_run_id"]):
            for variant in report.variants:
                key = variant.name.replace("-", "_")
                tracker.log_metrics(
                    {f"opt_{key}_throughput": variant.throughput, f"opt_{key}_speedup": variant.speedup,
                     f"opt_{key}_p50_ms": variant.p50_ms, f"opt_{key}_size_mb": variant.size_mb}
                    | {f"opt_{key}_{k}": v for k, v in variant.agreement.items()}
                )
            import mlflow as mlflow_lib

            mlflow_lib.log_artifact(str(stored.path / REPORT_FILE), "optimization")
    assert stored is not None
    data = json.loads((stored.path / REPORT_FILE).read_text())
    from kiln.optimize import OptimizationReport, VariantResult

    report = OptimizationReport(**{**data, "variants": [VariantResult(**v) for v in data["variants"]]})
    context.log.info(f"{candidate.name}:\n{report.table()}")
    int8 = report.variant("onnx-int8")
    metadata = {
        "table": dg.MetadataValue.md(report.table()),
        "reused": reused,
        "path": dg.MetadataValue.path(str(stored.path)),
        "int8_speedup": dg.MetadataValue.float(round(int8.speedup, 3)),
        "onnx_speedup": dg.MetadataValue.float(round(report.variant("onnx-fp32").speedup, 3)),
        "int8_size_mb": dg.MetadataValue.float(round(int8.size_mb, 2)),
        **{f"int8_{k}": dg.MetadataValue.float(round(v, 4)) for k, v in int8.agreement.items()},
    }
    return dg.Output({"path": str(stored.path), "report": report.to_json()}, metadata=metadata)
