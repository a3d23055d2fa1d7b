"""Super-resolution network architectures in plain torch, built from the shape of a Real-ESRGAN state dict.

Why not spandrel: spandrel 0.4.2 (the newest on PyPI) requires torchvision, and ``import spandrel``
imports every architecture it knows, two of which (LaMa, RestoreFormer) import torchvision at module
level, so spandrel cannot even be imported beside Kiln's CPU torch (where torchvision must not be
installed, see STACK.md). The two architectures Real-ESRGAN's released weights use are small, so they
are written here, with the parameter names of Real-ESRGAN/BasicSR so its checkpoints load unchanged:

- ``SRVGGNetCompact`` (realesr-general-x4v3, realesr-animevideov3, ...): keys ``body.N.weight``;
- ``RRDBNet`` (RealESRGAN_x4plus, RealESRGAN_x2plus, RealESRGAN_x4plus_anime_6B, ESRGAN): keys
  ``conv_first``/``body.N.rdbK.convJ``/``conv_body``/``conv_up1``/... (the 2018 ESRGAN names
  ``RRDB_trunk``/``trunk_conv``/``upconv1``/``HRconv`` are renamed to these).

``build_network(state_dict)`` detects which one a state dict is, reads its hyperparameters (features,
blocks, scale) from the tensor shapes, builds it and loads the weights strictly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


class UnsupportedWeights(ValueError):
    """A state dict that is neither SRVGGNetCompact nor RRDBNet (or is damaged)."""


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact VGG-style network: convs at input size, a pixel shuffle, plus a nearest-upsampled skip."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, features: int = 64, convs: int = 16,
                 scale: int = 4, activation: str = "prelu"):
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(in_channels, features, 3, 1, 1), _activation(activation, features)]
        for _ in range(convs):
            layers += [nn.Conv2d(features, features, 3, 1, 1), _activation(activation, features)]
        layers.append(nn.Conv2d(features, out_channels * scale * scale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def _activation(kind: str, features: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(num_parameters=features)
    if kind == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    return nn.ReLU(inplace=True)


class ResidualDenseBlock(nn.Module):
    def __init__(self, features: int, growth: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, growth, 3, 1, 1)
        self.conv2 = nn.Conv2d(features + growth, growth, 3, 1, 1)
        self.conv3 = nn.Conv2d(features + 2 * growth, growth, 3, 1, 1)
        self.conv4 = nn.Conv2d(features + 3 * growth, growth, 3, 1, 1)
        self.conv5 = nn.Conv2d(features + 4 * growth, features, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x  # residual scaling, as in ESRGAN


class RRDB(nn.Module):
    def __init__(self, features: int, growth: int):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(features, growth)
        self.rdb2 = ResidualDenseBlock(features, growth)
        self.rdb3 = ResidualDenseBlock(features, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator as Real-ESRGAN uses it: x2 and x1 models pixel-unshuffle their input first."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, scale: int = 4, features: int = 64,
                 blocks: int = 23, growth: int = 32):
        super().__init__()
        self.scale = scale
        self.unshuffle = {4: 1, 8: 1, 2: 2, 1: 4}[scale]
        self.conv_first = nn.Conv2d(in_channels * self.unshuffle ** 2, features, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(features, growth) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(features, features, 3, 1, 1)
        if scale == 8:
            self.conv_up3 = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_hr = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_last = nn.Conv2d(features, out_channels, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.unshuffle > 1:  # pixel_unshuffle needs sides divisible by its factor: pad, crop after
            pad_h, pad_w = (-height) % self.unshuffle, (-width) % self.unshuffle
            x = F.pixel_unshuffle(F.pad(x, (0, pad_w, 0, pad_h), mode="replicate"), self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        if self.scale == 8:
            feat = self.lrelu(self.conv_up3(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        return out[..., : height * self.scale, : width * self.scale]


@dataclass(frozen=True)
class Network:
    module: nn.Module
    architecture: str  # "SRVGGNetCompact" | "RRDBNet"
    scale: int
    in_channels: int
    hyperparameters: dict[str, Any]


def unwrap_state_dict(raw: Any) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: Real-ESRGAN's .pth files hold them under ``params_ema`` or ``params``."""
    if isinstance(raw, dict):
        for key in ("params_ema", "params", "state_dict", "model"):
            if key in raw and isinstance(raw[key], dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise UnsupportedWeights("the file does not hold a state dict of tensors")
    return {key.removeprefix("module."): value for key, value in raw.items()}


_ESRGAN_2018_NAMES = (("RRDB_trunk.", "body."), (".RDB", ".rdb"), ("trunk_conv.", "conv_body."),
                      ("upconv", "conv_up"), ("HRconv.", "conv_hr."))


def build_network(state_dict: dict[str, torch.Tensor]) -> Network:
    """Detect the architecture of ``state_dict``, build it with the hyperparameters its shapes imply, load it."""
    if "conv_first.weight" in state_dict:
        for old, new in _ESRGAN_2018_NAMES:
            state_dict = {key.replace(old, new): value for key, value in state_dict.items()}
        builder = _rrdbnet
    elif "body.0.weight" in state_dict and state_dict["body.0.weight"].dim() == 4:
        builder = _compact
    elif "model.0.weight" in state_dict:
        raise UnsupportedWeights("this is an old-layout ESRGAN checkpoint (model.N keys); convert it to the "
                                 "Real-ESRGAN/BasicSR RRDBNet layout (conv_first, body.N.rdbK...)")
    else:
        raise UnsupportedWeights("the architecture is not recognised: supported are Real-ESRGAN's "
                                 "SRVGGNetCompact (body.N keys) and RRDBNet (conv_first, body.N.rdbK keys)")
    try:
        network = builder(state_dict)
    except (KeyError, IndexError) as exc:  # a tensor the layout needs is missing
        raise UnsupportedWeights(f"the state dict lacks {exc} for its architecture") from exc
    if network.in_channels not in (1, 3):
        raise UnsupportedWeights(f"a {network.architecture} taking {network.in_channels} channels is not an image "
                                 "network Kiln can feed (1 or 3 channels)")
    try:
        network.module.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise UnsupportedWeights(f"the weights do not fit a {network.architecture} {network.hyperparameters}: {exc}") from exc
    network.module.eval().requires_grad_(False)
    return network


def _scale_of(out_channels: int, channels: int) -> int:
    scale = math.isqrt(out_channels // channels) if out_channels % channels == 0 else 0
    if scale < 1 or scale * scale * channels != out_channels:
        raise UnsupportedWeights(f"a last layer of {out_channels} channels is no pixel shuffle of {channels} channels")
    return scale


def _compact(state: dict[str, torch.Tensor]) -> Network:
    conv_indices = sorted(int(m.group(1)) for key in state if (m := re.fullmatch(r"body\.(\d+)\.weight", key))
                          and state[key].dim() == 4)
    last = conv_indices[-1]
    features, in_channels = state["body.0.weight"].shape[:2]
    # PReLU has weights at the odd indices; ReLU/LeakyReLU have none (Real-ESRGAN's released models all use PReLU)
    activation = "prelu" if "body.1.weight" in state else "relu"
    hyperparameters = {"features": int(features), "convs": (last - 2) // 2, "activation": activation,
                       "scale": _scale_of(int(state[f"body.{last}.weight"].shape[0]), int(in_channels))}
    module = SRVGGNetCompact(int(in_channels), int(in_channels), **hyperparameters)
    return Network(module, "SRVGGNetCompact", hyperparameters["scale"], int(in_channels), hyperparameters)


def _rrdbnet(state: dict[str, torch.Tensor]) -> Network:
    features, first_in = (int(n) for n in state["conv_first.weight"].shape[:2])
    out_channels = int(state["conv_last.weight"].shape[0])
    unshuffle = math.isqrt(max(first_in // out_channels, 1))
    scale = {1: 4, 2: 2, 4: 1}.get(unshuffle)
    if scale is None or unshuffle * unshuffle * out_channels != first_in:
        raise UnsupportedWeights(f"conv_first takes {first_in} channels, no pixel unshuffle of {out_channels}")
    if scale == 4 and "conv_up3.weight" in state:
        scale = 8
    blocks = 1 + max(int(m.group(1)) for key in state if (m := re.match(r"body\.(\d+)\.rdb1\.", key)))
    growth = int(state["body.0.rdb1.conv1.weight"].shape[0])
    hyperparameters = {"features": features, "blocks": blocks, "growth": growth, "scale": scale}
    module = RRDBNet(out_channels, out_channels, **hyperparameters)
    return Network(module, "RRDBNet", scale, out_channels, hyperparameters)
