"""LLM fine-tuning as POST /api/llm-finetuning runs it (kiln/training/): LoRA with gradient accumulation on a
tiny Llama built locally (word-level tokenizer built with ``vocab={...}``), from an instruction JSONL of both
documented shapes; the loss falls, the adapter answers, and the merged model in the store (registered in
MLflow with its lineage) reloads and answers the same."""

import json

import pytest

from kiln.errors import InvalidInput
from kiln.store import ModelStore, fingerprint_of
from kiln.training.trainers import BadDataset, TrainingJob, planned_steps, read_instructions, train
from tests.tiny_llama import COLOURS, ROWS, store_tiny_llama, write_instructions


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A model store holding a tiny Llama (task text-generation), and the dataset file."""
    root = tmp_path_factory.mktemp("llm")
    store = ModelStore(root / "models")
    store_tiny_llama(store)
    return root, store, write_instructions(root / "instructions.jsonl")


def job(store, dataset, **overrides) -> TrainingJob:
    base = dict(model_type="causal_lm", base_model="tiny-llama", base_path=str(store.latest("tiny-llama").path),
                dataset_file=str(dataset), epochs=30, batch_size=4, learning_rate=5e-2, save_steps=0, max_steps=0,
                lora_r=8, lora_alpha=16, lora_dropout=0.0, max_length=48, gradient_accumulation_steps=2)
    return TrainingJob(**(base | overrides))


def test_instruction_rows_of_both_shapes_become_prompted_texts(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[-1]) + "\n")
    first, last = read_instructions(path)
    assert first.startswith("### Instruction:\nwhat colour is the apple") and first.endswith("### Response:\nred")
    assert last.startswith("### Instruction:\ncolour of the sun") and last.endswith("yellow")
    path.write_text('{"question": "no"}\n')
    with pytest.raises(BadDataset, match="row 1"):
        read_instructions(path)
    path.write_text("not json\n")
    with pytest.raises(BadDataset, match="dataset_path"):
        read_instructions(path)


def test_lora_trains_answers_and_merges_into_a_stored_model_that_answers_the_same(workspace, tmp_path):
    from kiln.finetune import generate, load_merged, load_tokenizer
    from kiln.tracking import Tracker
    from kiln.training.llm import merge, test_adapter

    root, store, dataset = workspace
    training = job(store, dataset)
    assert planned_steps(training) == 30 * 3 // 2  # 12 rows, batches of 4, two batches per optimizer step
    steps = []
    info = {"base": "tiny-llama", "base_path": training.base_path, "dataset_sha256": "d" * 64, "mlflow_run_id": "r"}
    with store.stage("colours-adapter", fingerprint_of("t"), "text-generation", info) as staging:
        metrics = train(training, staging, lambda step, m: steps.append((step, m["loss"])), lambda *a: None, None,
                        log=lambda _: None)
    assert [s for s, _ in steps] == list(range(1, 46))
    assert steps[-1][1] < 0.85 * steps[0][1], steps  # the loss fell (LoRA on q/v of a random base: slowly)
    tuned = store.set_info(store.latest("colours-adapter"), training=metrics)
    answer = test_adapter(tuned, "what colour is the sky", max_tokens=1, temperature=0.0, seed=0)
    assert answer in COLOURS.values()  # a real answer from the tuned adapter (the base answers anything)

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts", "llm-test")
    merged = merge(tuned, "/models/colours-merged", store, tracker)
    assert merged["model_name"] == "colours-merged" and merged["registered_version"] == "1"
    stored = store.latest("colours-merged")
    model = load_merged("causal-lm", stored.path)  # plain transformers, no peft
    assert generate(model, load_tokenizer(stored.path), "what colour is the sky", max_tokens=1) == answer
    run = tracker.client.get_run(merged["mlflow_run_id"])
    assert run.data.tags["kiln.base"] == "tiny-llama" and run.data.tags["kiln.dataset_sha256"] == "d" * 64
    with pytest.raises(InvalidInput, match="output_path"):
        merge(tuned, "/models/..", store, tracker)
