"""Parameter-efficient fine-tuning with peft: LoRA, and QLoRA on a 4-bit bitsandbytes base.

Two model kinds share one training loop:
- ``sequence-classification``: an encoder (e.g. MiniLM) with a classification head, trained on labelled text;
- ``causal-lm``: a decoder (llama-class) trained on plain text, the path hub LLMs take.
The adapter is saved, then merged into a full-precision copy of the base (``merge_and_unload``), so
the result loads with plain transformers and serves without peft or bitsandbytes.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from kiln.errors import KilnError

RECIPE_VERSION = "1"  # bump when the training code changes what it produces
ModelKind = Literal["sequence-classification", "causal-lm"]
StepCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class LoraHyperparameters:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("query", "value")
    modules_to_save: tuple[str, ...] = ("classifier", "pooler")  # new head (and pooler) train in full
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    epochs: int = 2
    batch_size: int = 32
    max_length: int = 128
    max_steps: int = 0  # 0: no limit; otherwise stop after this many optimizer steps (small runs)
    seed: int = 0
    quantization: Literal["none", "4bit"] = "none"  # 4bit = QLoRA (bitsandbytes nf4/fp4 base)
    quant_type: Literal["nf4", "fp4"] = "nf4"
    allow_quantization_fallback: bool = False  # never fall back to plain LoRA unless asked to
    checkpoint_every: int = 50  # optimizer steps between checkpoints (resume picks up from the last)
    gradient_accumulation_steps: int = 1  # batches whose gradients add up before one optimizer step


@dataclass
class FinetuneResult:
    metrics: dict[str, float]
    quantization: str  # what was really used: "none", "4bit-nf4", "none (fallback: ...)"
    steps: int
    resumed_from_step: int
    history: list[dict[str, float]] = field(default_factory=list)


def fingerprint_inputs(base_sha256: str, data_fingerprint: str, params: LoraHyperparameters) -> dict[str, Any]:
    fields = asdict(params)
    if fields["gradient_accumulation_steps"] == 1:  # the default: versions stored before the field existed stay valid
        del fields["gradient_accumulation_steps"]
    return {"recipe": "lora", "version": RECIPE_VERSION, "base": base_sha256, "data": data_fingerprint, "params": fields}


# --- bitsandbytes ---


def bitsandbytes_4bit_problem(quant_type: str = "nf4") -> str | None:
    """None when bitsandbytes can quantize to 4 bits here (round trip checked), else why not."""
    try:
        import bitsandbytes.functional as bnbf
        import torch

        weights = torch.randn(64, 64)
        packed, state = bnbf.quantize_4bit(weights, quant_type=quant_type)
        error = (bnbf.dequantize_4bit(packed, state) - weights).abs().mean().item()
    except Exception as exc:  # any failure means "cannot quantize on this platform"
        return f"{type(exc).__name__}: {exc}"
    if not math.isfinite(error) or error > 0.25:
        return f"4-bit round trip error {error:.3f} is too large"
    return None


def resolve_quantization(params: LoraHyperparameters) -> tuple[bool, str]:
    """(load the base in 4 bits?, description). Fails clearly unless a fallback was configured."""
    if params.quantization == "none":
        return False, "none"
    problem = bitsandbytes_4bit_problem(params.quant_type)
    if problem is None:
        return True, f"4bit-{params.quant_type}"
    if not params.allow_quantization_fallback:
        raise KilnError(
            f"QLoRA needs bitsandbytes 4-bit quantization, which does not work on this platform ({problem}). "
            "Set allow_quantization_fallback=true to train plain LoRA on the full-precision base instead, "
            "or quantization='none'."
        )
    return False, f"none (fallback: {problem})"


# --- data ---


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffled batches of similar-length examples, so padding per batch stays short.

    Examples are shuffled, cut into mega-batches of 50 batches, sorted by length inside each, then the
    batches themselves are shuffled. Deterministic for a given seed (resume relies on it).
    """
    import numpy as np

    rng = np.random.RandomState(seed)
    order = rng.permutation(len(lengths))
    mega = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega].tolist(), key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


# --- models ---


def load_tokenizer(base_path: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_path), local_files_only=True)
    if tokenizer.pad_token is None:  # llama-class tokenizers have none
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def load_base_model(
    kind: ModelKind, base_path: Path, labels: list[str] | None, four_bit: bool, quant_type: str, keep_full: Sequence[str] = ()
):
    import torch
    import transformers

    kwargs: dict[str, Any] = {"local_files_only": True, "dtype": torch.float32}
    if four_bit:
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quant_type,
            bnb_4bit_compute_dtype=torch.float32,
            # modules trained in full (a new head) must stay floating point; the LM head always does
            llm_int8_skip_modules=[rf".*\b{name}" for name in (*keep_full, "lm_head")],
        )
    if kind == "sequence-classification":
        if not labels:
            raise KilnError("Sequence classification needs label names")
        return transformers.AutoModelForSequenceClassification.from_pretrained(
            str(base_path),
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            **kwargs,
        )
    if kind == "causal-lm":
        return transformers.AutoModelForCausalLM.from_pretrained(str(base_path), **kwargs)
    raise KilnError(f"Unknown model kind '{kind}'")


def add_lora(model, kind: ModelKind, params: LoraHyperparameters, four_bit: bool):
    from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

    if four_bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS if kind == "sequence-classification" else TaskType.CAUSAL_LM,
        r=params.rank,
        lora_alpha=params.alpha,
        lora_dropout=params.dropout,
        target_modules=list(params.target_modules),
        modules_to_save=list(params.modules_to_save) or None,
    )
    return get_peft_model(model, config)


def parameter_counts(model) -> tuple[int, int]:
    trainable, total = model.get_nb_trainable_parameters()
    return int(trainable), int(total)


# --- training ---


def _batch_tensors(tokenizer, kind: ModelKind, texts: list[str], labels: list[int] | None, max_length: int):
    import torch

    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if kind == "sequence-classification":
        inputs["labels"] = torch.tensor(labels, dtype=torch.long)
    else:
        targets = batch["input_ids"].clone()
        targets[batch["attention_mask"] == 0] = -100  # no loss on padding
        inputs["labels"] = targets
    return inputs


def predict_labels(model, tokenizer, texts: list[str], max_length: int = 128, batch_size: int = 64) -> list[int]:
    import torch

    model.eval()
    predicted: list[int] = []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = tokenizer([texts[i] for i in chunk], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            predicted.extend(zip(chunk, logits.argmax(-1).tolist()))
    return [label for _, label in sorted(predicted)]


def finetune(
    kind: ModelKind,
    base_path: Path,
    out_dir: Path,
    params: LoraHyperparameters,
    train_texts: list[str],
    train_labels: list[int] | None = None,
    labels: list[str] | None = None,
    validation: tuple[list[str], list[int]] | None = None,
    checkpoint_dir: Path | None = None,
    on_step: StepCallback | None = None,
    log: Callable[[str], None] = print,
) -> FinetuneResult:
    """Train a LoRA adapter on ``base_path``, merge it into the full-precision base, save to ``out_dir``.

    With ``checkpoint_dir``, trainable weights, optimizer and scheduler are saved every
    ``checkpoint_every`` steps and a rerun with the same inputs resumes from the last checkpoint.
    """
    import torch

    train_texts = list(train_texts)
    train_labels = list(train_labels) if train_labels is not None else None
    if validation is not None:
        validation = (list(validation[0]), list(validation[1]))
    if not train_texts:
        raise KilnError("No training examples")
    if kind == "sequence-classification" and (train_labels is None or len(train_labels) != len(train_texts)):
        raise KilnError("Sequence classification needs one label per training text")
    four_bit, quantization = resolve_quantization(params)
    log(f"fine-tuning {kind} from {base_path} with LoRA r={params.rank}, quantization: {quantization}")
    torch.manual_seed(params.seed)
    tokenizer = load_tokenizer(base_path)
    model = add_lora(load_base_model(kind, base_path, labels, four_bit, params.quant_type, params.modules_to_save), kind, params, four_bit)
    trainable, total = parameter_counts(model)
    quantized_layers = sum(type(m).__name__ == "Linear4bit" for m in model.modules())  # proof the base is 4-bit

    lengths = [len(ids) for ids in tokenizer(train_texts, truncation=True, max_length=params.max_length)["input_ids"]]
    epochs = [length_grouped_batches(lengths, params.batch_size, params.seed + epoch) for epoch in range(params.epochs)]
    schedule = [(epoch, batch) for epoch, batches in enumerate(epochs) for batch in batches]
    accumulate = max(1, params.gradient_accumulation_steps)  # an optimizer step takes `accumulate` batches
    schedule = [schedule[i : i + accumulate] for i in range(0, len(schedule), accumulate)]
    if params.max_steps:  # counts optimizer steps
        schedule = schedule[: params.max_steps]
    trainable_params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable_params, lr=params.learning_rate, weight_decay=params.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=params.learning_rate, total_steps=len(schedule))

    start_step = _resume(model, optimizer, scheduler, checkpoint_dir, log)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    model.train()
    running = 0.0
    for step in range(start_step, len(schedule)):
        optimizer.zero_grad()
        step_loss, epoch = 0.0, schedule[step][-1][0]
        for _, batch in schedule[step]:
            inputs = _batch_tensors(
                tokenizer, kind, [train_texts[i] for i in batch], [train_labels[i] for i in batch] if train_labels else None, params.max_length
            )
            loss = model(**inputs).loss / len(schedule[step])
            loss.backward()
            step_loss += loss.item()
        optimizer.step()
        scheduler.step()
        running = step_loss if step == start_step else 0.9 * running + 0.1 * step_loss
        metrics = {"train_loss": step_loss, "train_loss_smoothed": running, "learning_rate": scheduler.get_last_lr()[0], "epoch": float(epoch)}
        history.append(metrics)
        if on_step:
            on_step(step, metrics)
        last_of_epoch = step + 1 == len(schedule) or schedule[step + 1][0][0] != epoch
        if validation is not None and kind == "sequence-classification" and last_of_epoch:
            accuracy = _accuracy(model, tokenizer, validation, params.max_length)
            log(f"epoch {epoch + 1}: validation accuracy {accuracy:.4f}")
            if on_step:
                on_step(step, {"validation_accuracy": accuracy})
            model.train()
        if checkpoint_dir is not None and ((step + 1) % params.checkpoint_every == 0 or step + 1 == len(schedule)):
            _save_checkpoint(model, optimizer, scheduler, step + 1, checkpoint_dir)
    train_seconds = time.perf_counter() - started

    adapter_dir = out_dir / "adapter"
    model.save_pretrained(str(adapter_dir))
    del model, optimizer
    merge_adapter(kind, base_path, adapter_dir, out_dir, labels)
    tokenizer.save_pretrained(str(out_dir))
    metrics = {
        "train_seconds": train_seconds,
        "steps": float(len(schedule)),
        "trainable_parameters": float(trainable),
        "total_parameters": float(total),
        "trainable_share": trainable / total,
        "final_train_loss": running,
        "quantized_layers": float(quantized_layers),
    }
    if validation is not None and kind == "sequence-classification":
        metrics["validation_accuracy"] = _accuracy(load_merged(kind, out_dir), tokenizer, validation, params.max_length)
    (out_dir / "kiln-finetune.json").write_text(
        json.dumps({"kind": kind, "params": asdict(params), "quantization": quantization, "metrics": metrics}, indent=2)
    )
    return FinetuneResult(metrics, quantization, len(schedule), start_step, history)


def _accuracy(model, tokenizer, validation: tuple[list[str], list[int]], max_length: int) -> float:
    texts, gold = validation
    predicted = predict_labels(model, tokenizer, texts, max_length)
    return sum(int(p == g) for p, g in zip(predicted, gold)) / max(len(gold), 1)


def merge_adapter(kind: ModelKind, base_path: Path, adapter_dir: Path, out_dir: Path, labels: list[str] | None) -> None:
    """Load the base in full precision, apply the saved adapter, fold it into the weights, save."""
    from peft import PeftModel

    base = load_base_model(kind, base_path, labels, four_bit=False, quant_type="nf4")
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out_dir))


def load_merged(kind: ModelKind, path: Path):
    import transformers

    cls = transformers.AutoModelForSequenceClassification if kind == "sequence-classification" else transformers.AutoModelForCausalLM
    return cls.from_pretrained(str(path), local_files_only=True).eval()


def _save_checkpoint(model, optimizer, scheduler, step: int, checkpoint_dir: Path) -> None:
    import torch

    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    state = {
        "step": step,
        "trainable": {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
    }
    temporary = checkpoint_dir / "checkpoint.pt.tmp"
    torch.save(state, temporary)
    temporary.replace(checkpoint_dir / "checkpoint.pt")  # atomic: a crash never leaves half a checkpoint


def _resume(model, optimizer, scheduler, checkpoint_dir: Path | None, log: Callable[[str], None]) -> int:
    import torch

    path = checkpoint_dir / "checkpoint.pt" if checkpoint_dir else None
    if path is None or not path.is_file():
        return 0
    state = torch.load(path, weights_only=False)
    missing = set(state["trainable"]) ^ {n for n, p in model.named_parameters() if p.requires_grad}
    if missing:
        log(f"ignoring checkpoint {path}: it holds other parameters ({sorted(missing)[:3]}...)")
        return 0
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    log(f"resuming from checkpoint {path} at step {state['step']}")
    return int(state["step"])


def clear_checkpoint(checkpoint_dir: Path) -> None:
    shutil.rmtree(checkpoint_dir, ignore_errors=True)


# --- instruction tuning (causal LM) ---

RESPONSE_MARK = "### Response:"


def instruction_prompt(instruction: str, context: str = "") -> str:
    """The prompt a tuned model sees, in training and in generation: the instruction, its input, the cue."""
    parts = [f"### Instruction:\n{instruction.strip()}"]
    if context.strip():
        parts.append(f"### Input:\n{context.strip()}")
    return "\n\n".join(parts) + f"\n\n{RESPONSE_MARK}\n"


def instruction_texts(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Training texts from {"instruction", "input", "output"} or {"prompt", "completion"} rows."""
    texts = []
    for number, row in enumerate(rows, start=1):
        if isinstance(row, dict) and isinstance(row.get("instruction"), str) and isinstance(row.get("output"), str):
            texts.append(instruction_prompt(row["instruction"], str(row.get("input") or "")) + row["output"].strip())
        elif isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str):
            texts.append(instruction_prompt(row["prompt"]) + row["completion"].strip())
        else:
            raise KilnError(f"row {number} has neither instruction/output nor prompt/completion strings")
    if not texts:
        raise KilnError("the dataset has no rows")
    return texts


def load_adapter(base_path: Path, adapter_dir: Path):
    """The full-precision base with the trained adapter on top (what POST /api/llm-finetuning/test runs)."""
    from peft import PeftModel

    base = load_base_model("causal-lm", base_path, None, four_bit=False, quant_type="nf4")
    return PeftModel.from_pretrained(base, str(adapter_dir)).eval()


def generate(model, tokenizer, prompt: str, max_tokens: int = 64, temperature: float = 0.0, seed: int = 0) -> str:
    """The model's answer to ``prompt`` (as an instruction): greedy at temperature 0, else sampled with ``seed``."""
    import torch

    torch.manual_seed(seed)
    inputs = tokenizer(instruction_prompt(prompt), return_tensors="pt")
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    with torch.inference_mode():
        output = model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                max_new_tokens=max_tokens, pad_token_id=tokenizer.pad_token_id, **sampling)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
