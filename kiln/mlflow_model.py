"""The MLflow pyfunc flavour of a Kiln model, so ``mlflow.pyfunc.load_model`` serves it too.

Logged as "models from code": MLflow stores this file, not a pickle of the object.
"""

from __future__ import annotations

from pathlib import Path

import mlflow.models
import mlflow.pyfunc

from kiln.store import StoredModel


class KilnPyfuncModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from kiln.engines import load_engine

        weights = Path(context.artifacts["weights"])
        stored = StoredModel.read(weights)
        self.engine = load_engine(stored.task, weights, name=stored.name)

    def predict(self, context, model_input, params=None):
        if hasattr(model_input, "columns"):  # a DataFrame: one column of texts, or one row per vector
            model_input = model_input.iloc[:, 0].tolist() if model_input.shape[1] == 1 else model_input.values.tolist()
        items, _ = self.engine.schema.validate(model_input, max_items=100_000)
        return self.engine.predict(items)


mlflow.models.set_model(KilnPyfuncModel())
