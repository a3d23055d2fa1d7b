"""Tiny, randomly initialised speech models built from configs and saved in their real on-disk formats
(save_pretrained folders, openai-whisper's {"dims", "model_state_dict"} .pt), then staged in the model
store the way a downloaded model is. They exercise the real loading code; their output is noise."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from kiln.store import ModelStore, fingerprint_of

CHARS = list("abcdefghijklmnopqrstuvwxyz '.,?!")


def _spm_char_model(folder: Path) -> Path:
    import sentencepiece as spm

    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(["hello world", "the quick brown fox jumps over the lazy dog", "kiln speaks"] * 20))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "spm_char"), model_type="char",
                                   vocab_size=30, character_coverage=1.0, bos_id=0, pad_id=1, eos_id=2, unk_id=3)
    corpus.unlink()
    return folder / "spm_char.model"


def save_tiny_speecht5(folder: Path) -> Path:
    import numpy as np
    import torch
    from transformers import (
        SpeechT5Config,
        SpeechT5FeatureExtractor,
        SpeechT5ForTextToSpeech,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
        SpeechT5Processor,
        SpeechT5Tokenizer,
    )

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = SpeechT5Tokenizer(vocab_file=str(_spm_char_model(folder)))
    config = SpeechT5Config(
        vocab_size=tokenizer.vocab_size + 1, hidden_size=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        speech_decoder_prenet_units=16, speech_decoder_postnet_units=16, speech_decoder_postnet_layers=1,
        speaker_embedding_dim=8, num_mel_bins=20, reduction_factor=2, max_speech_positions=600, max_text_positions=200,
    )
    SpeechT5ForTextToSpeech(config).save_pretrained(folder)
    SpeechT5Processor(feature_extractor=SpeechT5FeatureExtractor(num_mel_bins=20), tokenizer=tokenizer).save_pretrained(folder)
    vocoder = SpeechT5HifiGanConfig(model_in_dim=20, upsample_initial_channel=16, upsample_rates=[4, 4],
                                    upsample_kernel_sizes=[8, 8], resblock_kernel_sizes=[3],
                                    resblock_dilation_sizes=[[1, 3]])
    SpeechT5HifiGan(vocoder).save_pretrained(folder / "vocoder")
    np.save(folder / "speaker_embeddings.npy", np.random.default_rng(0).normal(size=8).astype(np.float32))
    return folder


def save_tiny_vits(folder: Path) -> Path:
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {char: index for index, char in enumerate(["<pad>", *CHARS])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    VitsTokenizer(vocab_file=str(folder / "vocab.json"), add_blank=True, normalize=True, phonemize=False).save_pretrained(folder)
    config = VitsConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32, flow_size=8,
        spectrogram_bins=17, upsample_initial_channel=16, upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]], prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1, posterior_encoder_num_wavenet_layers=1, duration_predictor_num_flows=1,
        duration_predictor_filter_channels=16, depth_separable_num_layers=1, sampling_rate=16000,
    )
    VitsModel(config).save_pretrained(folder)
    return folder


def save_tiny_whisper(path: Path, n_state: int = 64, layers: int = 1) -> Path:
    """openai-whisper's checkpoint format; n_vocab 51865 is the multilingual tokenizer's size."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=n_state, n_audio_head=max(1, n_state // 64),
                           n_audio_layer=layers, n_vocab=51865, n_text_ctx=448, n_text_state=n_state,
                           n_text_head=max(1, n_state // 64), n_text_layer=layers)
    model = Whisper(dims)
    # Whisper allocates the decoder's positional embedding with torch.empty (real checkpoints overwrite it):
    # fill it, or the tiny model computes on whatever memory held (sometimes NaN).
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


def stage(store_dir: Path, name: str, task: str, build, info: dict | None = None) -> Path:
    """Put a model into the store exactly as the pipeline's raw_model does (staging folder, manifest)."""
    store = ModelStore(store_dir)
    fingerprint = fingerprint_of("tiny", name, task)
    existing = store.find(name, fingerprint)
    if existing:
        return existing.path
    with store.stage(name, fingerprint, task, info) as staging:
        build(staging)
    return store.find(name, fingerprint).path
