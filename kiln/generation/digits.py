"""The digits diffusion model as a generator: text-to-image (the digit a prompt names), SDEdit
image-to-image, and videos (a walk through noise for one digit, a morph between two, or an animation of an
uploaded image), all through kiln.generation.sampling."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.errors import KilnError
from kiln.generation import prompts
from kiln.generation.sampling import StepCallback, initial_noise, sample

CONFIG_FILE = "kiln-generation.json"
OUTPUT_SIZES = (16, 32, 64, 128, 256)  # native 16x16, scaled up by pixel repetition


@dataclass
class ImageRequest:
    prompt: str
    seed: int
    negative_prompt: str | None = None


class DigitsDiffusion:
    kind = "digits-ddpm"

    def __init__(self, name: str, unet: Any, config: dict[str, Any]):
        self.name = name
        self.unet = unet.eval()
        self.config = config
        self.labels = list(config["labels"])
        self.null_class = int(config["null_class"])
        self.native = int(config["image_size"])
        self.default_guidance = float(config.get("default_guidance_scale", 2.0))

    @classmethod
    def load(cls, path: Path, name: str) -> DigitsDiffusion:
        from diffusers import UNet2DModel

        config_file = Path(path) / CONFIG_FILE
        if not config_file.is_file():
            raise KilnError(f"Model '{name}' at {path} has no {CONFIG_FILE}: not a digits diffusion model")
        from kiln.generation.hub import placement

        # fp32 everywhere: 1.1 M parameters gain nothing from fp16, and the judge's figures stay comparable
        unet = UNet2DModel.from_pretrained(str(Path(path) / "unet")).to(placement().device)
        return cls(name, unet, json.loads(config_file.read_text()))

    # --- what it accepts ---

    def ground(self, prompt: str) -> int:
        return prompts.ground_digit(prompt, self.labels)

    def describe(self) -> dict[str, Any]:
        return {"resolution": f"{self.native}x{self.native}", "draws": self.labels,
                "parameters": sum(p.numel() for p in self.unet.parameters())}

    # --- generation ---

    def images(self, requests: list[ImageRequest], steps: int, guidance_scale: float,
               on_step: StepCallback | None = None):
        """(N, 1, 16, 16) tensors in -1..1, one per request, sampled in one batch."""
        classes = [self.ground(r.prompt) for r in requests]
        negatives = [prompts.ground_negative(r.negative_prompt, self.labels) for r in requests]
        return sample(self.unet, classes, [r.seed for r in requests], self.null_class, steps, guidance_scale,
                      negative_classes=negatives, on_step=on_step)

    def image_to_image(self, image: Any, prompt: str, seed: int, strength: float, steps: int, guidance_scale: float,
                       negative_prompt: str | None = None, on_step: StepCallback | None = None):
        """SDEdit: ``image`` (a PIL image) noised to ``strength`` and denoised towards the prompt's digit."""
        target = self.ground(prompt)
        negative = prompts.ground_negative(negative_prompt, self.labels)
        return sample(self.unet, [target], [seed], self.null_class, steps, guidance_scale, negative_classes=[negative],
                      init_images=self.to_input(image), strength=strength, on_step=on_step)[0]

    def to_input(self, image: Any):
        """A PIL image as the model's input: grey, native size, -1..1 (dark digits on light paper are inverted,
        as the digits data is light on dark)."""
        import numpy as np
        from PIL import Image

        grey = np.asarray(image.convert("L").resize((self.native, self.native), Image.BILINEAR), dtype=np.float32)
        if grey.mean() > 127:  # mostly light: a dark digit on paper
            grey = 255 - grey
        return (grey / 127.5 - 1.0)[None, None]

    def video(self, prompt: str, num_frames: int, seed: int, steps: int, guidance_scale: float,
              on_step: StepCallback | None = None):
        """Frames for a prompt naming one digit (the same digit while the noise turns smoothly through a loop)
        or two (a morph from the first to the second, from the same noise): consistent, smooth frames."""
        first, second = prompts.ground_transition(prompt, self.labels)
        shape = (1, self.native, self.native)
        if second is None:
            start, end = initial_noise([seed, seed + 1], shape)
            angles = [math.pi / 2 * math.sin(math.pi * f / num_frames) for f in range(num_frames)]  # out and back
            noise = _slerp_all(start, end, angles)
            return sample(self.unet, [first] * num_frames, [seed] * num_frames, self.null_class, steps, guidance_scale,
                          noise=noise, on_step=on_step)
        import torch

        noise = initial_noise([seed], shape).repeat(num_frames, 1, 1, 1)
        mix = [f / max(1, num_frames - 1) for f in range(num_frames)]
        mix = [0.5 - 0.5 * math.cos(math.pi * m) for m in mix]  # ease in and out
        with torch.no_grad():
            return sample(self.unet, [first] * num_frames, [seed] * num_frames, self.null_class, steps, guidance_scale,
                          second_classes=[second] * num_frames, mix=mix, noise=noise, on_step=on_step)

    def animate(self, image: Any, num_frames: int, seed: int, steps: int, motion: float = 0.5,
                prompt: str | None = None, on_step: StepCallback | None = None):
        """Image-to-video: frame 0 is the upload; later frames are SDEdits of it with growing strength (up to
        ``motion``) along a smooth noise walk, so it comes to life without jumping."""
        import torch

        target = self.ground(prompt) if prompt else self.null_class
        init = torch.as_tensor(self.to_input(image))
        shape = (1, self.native, self.native)
        start, end = initial_noise([seed, seed + 1], shape)
        frames = [init[0]]
        for index in range(1, num_frames):
            fraction = index / max(1, num_frames - 1)
            noise = _slerp_all(start, end, [math.pi / 2 * fraction])
            frame_steps = steps
            strength = motion * math.sin(math.pi / 2 * fraction)

            def progress(done: int, total: int, index: int = index) -> None:
                if on_step is not None:
                    on_step(index - 1, num_frames - 1)

            frames.append(sample(self.unet, [target], [seed], self.null_class, frame_steps, 2.0 if prompt else 1.0,
                                 init_images=init, strength=strength, noise=noise, on_step=progress)[0])
            if on_step is not None:
                on_step(index, num_frames - 1)
        return torch.stack(frames)


def _slerp_all(start, end, angles: list[float]):
    """Noise on the great circle from ``start`` towards ``end`` (same norm all along: every frame is
    equally 'noisy', so the frames stay consistent)."""
    import torch

    return torch.cat([math.cos(a) * start + math.sin(a) * end for a in angles])
