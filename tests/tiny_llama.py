"""A tiny Llama built locally (no hub): a 2-layer LlamaForCausalLM and a word-level tokenizer built with
``vocab={...}`` (transformers 5 ignores a vocab file), saved in the real on-disk format into a model-store
entry of task text-generation, the way a downloaded model is stored. Instruction rows of both documented shapes."""

from __future__ import annotations

import json
from pathlib import Path

COLOURS = {"apple": "red", "sky": "blue", "grass": "green", "snow": "white", "coal": "black", "sun": "yellow"}
ROWS = [{"instruction": f"what colour is the {thing}", "input": "", "output": colour} for thing, colour in COLOURS.items()]
ROWS += [{"prompt": f"colour of the {thing}", "completion": colour} for thing, colour in COLOURS.items()]


def write_instructions(path: Path) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in ROWS) + "\n")
    return path


def store_tiny_llama(store, name: str = "tiny-llama"):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from kiln.finetune import instruction_prompt, instruction_texts

    texts = instruction_texts(ROWS) + [instruction_prompt("what colour is the sky")]
    split = pre_tokenizers.Whitespace()
    words = sorted({piece for text in texts for piece, _ in split.pre_tokenize_str(text)})
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = split
    with store.stage(name, "a" * 64, "text-generation") as staging:
        PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                                eos_token="</s>").save_pretrained(staging)
        torch.manual_seed(0)
        config = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                             bos_token_id=1, eos_token_id=2)
        LlamaForCausalLM(config).save_pretrained(staging)
    return store.latest(name)
