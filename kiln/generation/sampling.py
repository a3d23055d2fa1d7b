"""Sampling from the class-conditional digits UNet: DDIM with classifier-free guidance, SDEdit image-to-image,
per-sample seeds (so a sample does not depend on what else is in its batch), and a callback between
denoising steps (progress, and where a cancelled task stops)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

StepCallback = Callable[[int, int], None]  # (steps done, total steps); may raise to stop


def initial_noise(seeds: Sequence[int], shape: tuple[int, ...]):
    """One noise tensor per seed, each drawn from its own generator: the same seed gives the same start."""
    import torch

    return torch.cat([torch.randn((1, *shape), generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def sample(
    unet: Any,
    classes: Sequence[int],
    seeds: Sequence[int],
    null_class: int,
    steps: int = 25,
    guidance_scale: float = 2.0,
    negative_classes: Sequence[int | None] | None = None,
    second_classes: Sequence[int] | None = None,
    mix: Sequence[float] | None = None,
    init_images: Any = None,
    noise: Any = None,
    strength: float = 1.0,
    on_step: StepCallback | None = None,
    train_timesteps: int = 1000,
):
    """Denoise a batch: (N, C, H, W) images in -1..1.

    ``negative_classes[i]``, when set, replaces the null class as the unconditional branch of guidance for
    sample i (the negative prompt). With ``init_images`` (SDEdit), each input is noised to ``strength`` of the
    schedule and denoised from there: strength 0 returns the input, 1 ignores it. With ``second_classes`` and
    ``mix``, sample i is guided towards (1 - mix[i]) * classes[i] + mix[i] * second_classes[i] (a morph between
    two digits); ``noise`` replaces the seeded starting noise (video frames walk through it).
    """
    import torch
    from diffusers import DDIMScheduler

    count = len(classes)
    if len(seeds) != count:
        raise ValueError("one seed per sample")
    channels, size = unet.config.in_channels, unet.config.sample_size
    scheduler = DDIMScheduler(num_train_timesteps=train_timesteps, clip_sample=True)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    if noise is None:
        noise = initial_noise(seeds, (channels, size, size))
    if init_images is not None:
        start = steps - min(steps, int(round(steps * strength)))
        timesteps = timesteps[start:]
        init = torch.as_tensor(init_images, dtype=torch.float32).reshape(count, channels, size, size)
        if len(timesteps) == 0:
            return init.clamp(-1, 1)
        # strength 1: pure noise, exactly what text-to-image starts from (the input is ignored)
        images = noise if start == 0 else scheduler.add_noise(init, noise, timesteps[:1].repeat(count))
    else:
        images = noise
    device = next(unet.parameters()).device  # noise is drawn on the CPU: the same seed, the same image anywhere
    images = images.to(device)
    conditional = torch.tensor(list(classes), dtype=torch.long, device=device)
    negatives = [null_class if n is None else n for n in (negative_classes or [None] * count)]
    unconditional = torch.tensor(negatives, dtype=torch.long, device=device)
    branches = [conditional, unconditional]
    if second_classes is not None:
        branches.append(torch.tensor(list(second_classes), dtype=torch.long, device=device))
        weights = torch.tensor(list(mix), dtype=torch.float32, device=device).reshape(count, 1, 1, 1)
    total = len(timesteps)
    with torch.inference_mode():
        for index, t in enumerate(timesteps):
            outputs = unet(torch.cat([images] * len(branches)), t, class_labels=torch.cat(branches)).sample
            cond, uncond, *second = outputs.chunk(len(branches))
            if second:
                cond = (1 - weights) * cond + weights * second[0]
            predicted = uncond + guidance_scale * (cond - uncond)
            images = scheduler.step(predicted, t, images).prev_sample
            if on_step is not None:
                on_step(index + 1, total)
    return images.clamp(-1, 1).cpu()
