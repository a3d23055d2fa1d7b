"""Tiny diffusers pipelines built here from configs (tiny UNet, VAE and CLIP text encoder, a CLIP tokenizer
from a hand-written vocabulary), saved with ``save_pretrained``: the on-disk format a hub download has, so
Kiln loads them through the same code path."""

from __future__ import annotations

import json
from pathlib import Path

WORDS = ["a", "photo", "of", "cat", "dog", "red", "blue", "handwritten", "seven", "blurry", "sunset", "garden"]


def tiny_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    letters = sorted(set("".join(WORDS)))
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for piece in letters + [f"{c}</w>" for c in letters] + [f"{w}</w>" for w in WORDS]:
        vocab.setdefault(piece, len(vocab))
    merges = ["#version: 0.2"]
    for word in WORDS:  # merge left to right into the whole word
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merges.append(f"{pieces[0]} {pieces[1]}")
            merged = pieces[0] + pieces[1]
            vocab.setdefault(merged, len(vocab))
            pieces = [merged] + pieces[2:]
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("\n".join(dict.fromkeys(merges)) + "\n")
    tokenizer = CLIPTokenizer.from_pretrained(str(folder), model_max_length=16)
    return tokenizer, len(vocab)


def _text_encoder(vocab_size: int, with_projection: bool = False, seed: int = 0):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=37, num_attention_heads=4,
                            num_hidden_layers=2, max_position_embeddings=16, projection_dim=32,
                            bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def _vae(seed: int = 0):
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         norm_num_groups=8, sample_size=32)


def build_stable_diffusion(folder: Path) -> Path:
    """A StableDiffusionPipeline at 32x32 (16x16 latents, VAE factor 2)."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    tokenizer, vocab = tiny_tokenizer(folder / "_tokenizer")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(16, 32),
                                layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=4, norm_num_groups=8)
    pipeline = StableDiffusionPipeline(vae=_vae(), text_encoder=_text_encoder(vocab), tokenizer=tokenizer, unet=unet,
                                       scheduler=DDIMScheduler(clip_sample=False), safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipeline.save_pretrained(str(folder / "pipeline"))
    return folder / "pipeline"


def build_sdxl(folder: Path) -> Path:
    """A StableDiffusionXLPipeline at 32x32 with two tiny text encoders."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    tokenizer, vocab = tiny_tokenizer(folder / "_tokenizer")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(16, 32),
                                layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=64,
                                attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=8,
                                addition_embed_type="text_time", addition_time_embed_dim=8,
                                transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=80)
    pipeline = StableDiffusionXLPipeline(vae=_vae(), text_encoder=_text_encoder(vocab), tokenizer=tokenizer,
                                         text_encoder_2=_text_encoder(vocab, with_projection=True, seed=1),
                                         tokenizer_2=tokenizer, unet=unet, scheduler=EulerDiscreteScheduler())
    pipeline.save_pretrained(str(folder / "pipeline"))
    return folder / "pipeline"


def build_text_to_video(folder: Path) -> Path:
    """A TextToVideoSDPipeline (UNet3DConditionModel) at 32x32."""
    import torch
    from diffusers import DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel

    tokenizer, vocab = tiny_tokenizer(folder / "_tokenizer")
    torch.manual_seed(0)
    unet = UNet3DConditionModel(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(16, 32),
                                layers_per_block=1, down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
                                up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), cross_attention_dim=32,
                                attention_head_dim=4, norm_num_groups=8)
    pipeline = TextToVideoSDPipeline(vae=_vae(), text_encoder=_text_encoder(vocab), tokenizer=tokenizer, unet=unet,
                                     scheduler=DDIMScheduler(clip_sample=False))
    pipeline.save_pretrained(str(folder / "pipeline"))
    return folder / "pipeline"


def build_image_to_video(folder: Path) -> Path:
    """A StableVideoDiffusionPipeline at 32x32: a spatio-temporal UNet, the temporal-decoder VAE and a tiny CLIP
    vision encoder with its image processor (channels in multiples of 32: their GroupNorms have 32 groups)."""
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=16, in_channels=8, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=32,
        num_attention_heads=(2, 4), addition_time_embed_dim=8, projection_class_embeddings_input_dim=24)
    vae = AutoencoderKLTemporalDecoder(in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1,
                                       down_block_types=("DownEncoderBlock2D",) * 2, latent_channels=4, sample_size=32)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        image_size=224, patch_size=32))  # the pipeline resizes its input to 224x224 for the encoder
    scheduler = EulerDiscreteScheduler(prediction_type="v_prediction", timestep_type="continuous",
                                       use_karras_sigmas=True, sigma_min=0.002, sigma_max=700.0)
    pipeline = StableVideoDiffusionPipeline(vae=vae, image_encoder=encoder, unet=unet, scheduler=scheduler,
                                            feature_extractor=CLIPImageProcessor(size=224, crop_size=224))
    pipeline.save_pretrained(str(folder / "pipeline"))
    return folder / "pipeline"
