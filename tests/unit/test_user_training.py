"""The text_classifier model type of POST /api/training/start (kiln/training/trainers.py): a user's CSV or
JSONL of text,label, a held-out validation split, LoRA on a stored encoder (here a tiny BERT built locally,
with a tokenizer built from ``vocab={...}``), per-step reports and validation accuracy and F1."""

import json

import pytest

from kiln.training.requests import store_name
from kiln.training.trainers import BadDataset, TrainingJob, planned_steps, read_labelled_text, train

GOOD = ["great", "lovely", "superb", "wonderful", "fine", "brilliant"]
BAD = ["awful", "terrible", "dreadful", "poor", "horrible", "bleak"]
# The word first: this tokenizer adds no [CLS], and BERT classifies from the first token
ROWS = [(f"{word} film {i}", "pos") for i, word in enumerate(GOOD * 4)] + \
       [(f"{word} film {i}", "neg") for i, word in enumerate(BAD * 4)]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = sorted({w for text, _ in ROWS for w in text.split()})
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=32)).save_pretrained(folder)
    return folder


def test_csv_and_jsonl_datasets_and_their_errors(tmp_path):
    csv_file = tmp_path / "data.csv"
    csv_file.write_text("text,label\n" + "\n".join(f"{t},{label}" for t, label in ROWS))
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "label": label}) for t, label in ROWS))
    assert read_labelled_text(csv_file) == read_labelled_text(jsonl) == ([t for t, _ in ROWS], [la for _, la in ROWS])
    csv_file.write_text("sentence,label\nhello,pos\n")
    with pytest.raises(BadDataset, match="row 1 has no text"):
        read_labelled_text(csv_file)
    csv_file.write_text("text,label\na,pos\nb,pos\nc,pos\nd,pos\n")
    with pytest.raises(BadDataset, match="2 labels"):
        read_labelled_text(csv_file)


def test_output_dir_is_a_store_name():
    assert store_name("/models/trained") == "trained" and store_name("my-model") == "my-model"


def test_lora_text_classifier_learns_and_reports(encoder, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "\n".join(f"{t},{label}" for t, label in ROWS))
    job = TrainingJob("text_classifier", "tiny-bert", str(encoder), str(data), epochs=6, batch_size=8,
                      learning_rate=3e-2, save_steps=0, max_steps=0)
    assert planned_steps(job) == 6 * 5  # 48 rows, 38 after the 20% validation split, batches of 8
    steps, epochs = [], []
    out = tmp_path / "out"
    out.mkdir()
    metrics = train(job, out, lambda step, m: steps.append((step, m)), lambda epoch, m: epochs.append((epoch, m)),
                    None, log=lambda _: None)
    assert [s for s, _ in steps] == list(range(1, 31)) and {m["epoch"] for _, m in steps} == set(range(1, 7))
    assert [e for e, _ in epochs] == list(range(6))  # validation accuracy after every epoch
    assert metrics["accuracy"] >= 0.8 and 0 < metrics["f1_score"] <= 1, metrics
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "config.json").is_file()
