"""LoRA and QLoRA (bitsandbytes 4-bit on CPU), adapter merge and resume, on a tiny llama-class causal LM
built locally from a config and saved in the real on-disk format: the code path hub LLMs take."""

import json
from pathlib import Path

import pytest

from kiln.errors import KilnError
from kiln.finetune import (
    LoraHyperparameters,
    bitsandbytes_4bit_problem,
    finetune,
    length_grouped_batches,
    load_merged,
    resolve_quantization,
)

TEXTS = [f"the {adj} cat sat on the {noun} number {i}" for i, (adj, noun) in enumerate(
    [("small", "mat"), ("big", "sofa"), ("grey", "chair"), ("old", "rug")] * 8
)]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    """A 2-layer LlamaForCausalLM with a word-level tokenizer, saved with save_pretrained."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    words = sorted({w for text in TEXTS for w in text.split()})
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, bos_token_id=1, eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def params(**overrides) -> LoraHyperparameters:
    base = dict(target_modules=("q_proj", "v_proj"), modules_to_save=(), epochs=2, batch_size=8, learning_rate=5e-3, max_length=16)
    return LoraHyperparameters(**(base | overrides))


def mean_loss(model_dir: Path, texts: list[str]) -> float:
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = load_merged("causal-lm", model_dir)
    with torch.no_grad():  # one text at a time: no padding to mask
        losses = [model(input_ids=ids, labels=ids).loss.item() for ids in (tokenizer(t, return_tensors="pt")["input_ids"] for t in texts)]
    return sum(losses) / len(losses)


@pytest.mark.parametrize("quantization", ["none", "4bit"])
def test_lora_and_qlora_train_and_merge_into_a_plain_model(tiny_llama: Path, tmp_path: Path, quantization: str):
    before = mean_loss(tiny_llama, TEXTS)
    result = finetune("causal-lm", tiny_llama, tmp_path, params(quantization=quantization), TEXTS)
    assert result.quantization == ("none" if quantization == "none" else "4bit-nf4")
    assert (result.metrics["quantized_layers"] > 0) == (quantization == "4bit")  # the base really was 4-bit
    assert 0 < result.metrics["trainable_share"] < 0.2
    assert result.steps == 8 and len(result.history) == 8
    # merged: plain transformers weights, no peft wrapper or 4-bit layers, and it learned the texts
    config = json.loads((tmp_path / "config.json").read_text())
    assert "quantization_config" not in config
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert mean_loss(tmp_path, TEXTS) < before


def test_an_interrupted_run_resumes_from_its_checkpoint(tiny_llama: Path, tmp_path: Path):
    checkpoints = tmp_path / "checkpoints"

    def stop_at_step_5(step, metrics):
        if step == 5:
            raise KeyboardInterrupt  # as if the process were stopped mid-run

    with pytest.raises(KeyboardInterrupt):
        finetune("causal-lm", tiny_llama, tmp_path / "a", params(checkpoint_every=2), TEXTS, checkpoint_dir=checkpoints, on_step=stop_at_step_5)
    resumed = finetune("causal-lm", tiny_llama, tmp_path / "b", params(checkpoint_every=2), TEXTS, checkpoint_dir=checkpoints)
    assert resumed.resumed_from_step == 4 and len(resumed.history) == resumed.steps - 4


def test_bitsandbytes_quantizes_on_this_cpu():
    assert bitsandbytes_4bit_problem("nf4") is None
    assert bitsandbytes_4bit_problem("fp4") is None


def test_without_4bit_support_qlora_fails_clearly_unless_fallback_is_configured(monkeypatch):
    # stand-in for a platform where bitsandbytes cannot quantize (none exists on this machine)
    monkeypatch.setattr("kiln.finetune.bitsandbytes_4bit_problem", lambda quant_type: "RuntimeError: no 4-bit kernel")
    with pytest.raises(KilnError, match="allow_quantization_fallback"):
        resolve_quantization(LoraHyperparameters(quantization="4bit"))
    four_bit, used = resolve_quantization(LoraHyperparameters(quantization="4bit", allow_quantization_fallback=True))
    assert not four_bit and used.startswith("none (fallback: RuntimeError")
    assert resolve_quantization(LoraHyperparameters(quantization="none")) == (False, "none")


def test_length_grouped_batches_cover_every_example_once_with_similar_lengths():
    lengths = [i % 50 for i in range(1000)]
    batches = length_grouped_batches(lengths, 32, seed=0)
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    spreads = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert sum(spreads) / len(spreads) < 5  # random batches would spread about 45
    assert batches == length_grouped_batches(lengths, 32, seed=0)


def test_classification_needs_labels(tiny_llama: Path, tmp_path: Path):
    with pytest.raises(KilnError, match="one label per training text"):
        finetune("sequence-classification", tiny_llama, tmp_path, params(), TEXTS, train_labels=[0])
