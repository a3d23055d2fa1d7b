"""Loading the diffusers pipelines users bring from a hub (Stable Diffusion 1.x/2.x, its img2img, SDXL,
text-to-video, Stable Video Diffusion) from Kiln's model store, with the device and dtype of Kiln's device
layer (fp16 on CUDA, fp32 on CPU), attention slicing and CPU offload when memory is short. A model folder
is what ``save_pretrained`` writes (``model_index.json`` + component folders): a download and a locally
built pipeline take the same path."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.errors import InvalidInput, KilnError
from kiln.generation.sampling import StepCallback

# model_index.json's _class_name -> what the pipeline does
PIPELINE_TASKS = {
    "StableDiffusionPipeline": "text-to-image",
    "StableDiffusionXLPipeline": "text-to-image",
    "StableDiffusionImg2ImgPipeline": "image-to-image",
    "StableDiffusionXLImg2ImgPipeline": "image-to-image",
    "TextToVideoSDPipeline": "text-to-video",
    "StableVideoDiffusionPipeline": "image-to-video",
}
LOW_GPU_MEMORY_MB = 8000  # below this free, components are offloaded to the CPU between uses

# Well-known hub models: a model_id naming one that is not stored gets 503 with how to get it.
KNOWN_HUB_MODELS = {
    "stable-diffusion-v1-5": ("stable-diffusion-v1-5/stable-diffusion-v1-5", "text-to-image", "Stable Diffusion v1.5",
                              "General purpose image generation", 512),
    "stable-diffusion-2-1": ("stabilityai/stable-diffusion-2-1", "text-to-image", "Stable Diffusion 2.1",
                             "General purpose image generation at 768x768", 768),
    "stable-diffusion-xl": ("stabilityai/stable-diffusion-xl-base-1.0", "text-to-image", "Stable Diffusion XL",
                            "High-resolution image generation", 1024),
    "text-to-video-ms-1.7b": ("ali-vilab/text-to-video-ms-1.7b", "text-to-video", "ModelScope text-to-video",
                              "Short video clips from a prompt", 256),
    "stable-video-diffusion": ("stabilityai/stable-video-diffusion-img2vid-xt", "image-to-video",
                               "Stable Video Diffusion", "Animates an image into a short clip", 576),
}


def how_to_get(model_id: str) -> str:
    repo, task = KNOWN_HUB_MODELS[model_id][:2]
    return (f"Add it to assets/catalog.yaml (name: {model_id}, source: huggingface, id: {repo}, task: {task}) and run "
            f"the pipeline where the hub is reachable (KILN_HF_TOKEN for gated models), or download it elsewhere and "
            f"use source: path with the folder save_pretrained wrote")


@dataclass(frozen=True)
class Placement:
    device: str
    dtype_name: str  # "float16" | "float32"
    attention_slicing: bool
    cpu_offload: bool

    @property
    def dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype_name)


def placement() -> Placement:
    """Where pipelines run: CUDA in fp16 when torch can use a GPU (offloading when its free memory is short),
    otherwise the CPU in fp32 with attention slicing (smaller peaks of memory)."""
    from kiln.devices import best_gpu, detect_gpus, torch_cuda
    from kiln.settings import get_settings

    setting = get_settings().device  # KILN_DEVICE: auto | cpu | cuda[:N]
    if setting.startswith("cuda"):
        from kiln.device_registry import resolve_setting

        device = resolve_setting(setting)[0]  # a CUDA device this torch cannot use is refused, not ignored
        index = int(device.partition(":")[2] or 0)
        free = next((g.memory_free_mb for g in detect_gpus() if g.index == index), 0)
        return Placement(device, "float16", attention_slicing=free < LOW_GPU_MEMORY_MB,
                         cpu_offload=free < LOW_GPU_MEMORY_MB)
    if setting == "auto" and torch_cuda()[0]:
        gpu = best_gpu(detect_gpus())
        free = gpu.memory_free_mb if gpu is not None else 0
        short = free < LOW_GPU_MEMORY_MB
        return Placement(f"cuda:{gpu.index if gpu else 0}", "float16", attention_slicing=short, cpu_offload=short)
    return Placement("cpu", "float32", attention_slicing=True, cpu_offload=False)


def pipeline_class_name(path: Path) -> str | None:
    index = Path(path) / "model_index.json"
    if not index.is_file():
        return None
    return json.loads(index.read_text()).get("_class_name")


class HubPipeline:
    """A loaded diffusers pipeline and what it accepts."""

    kind = "diffusers"

    def __init__(self, name: str, pipeline: Any, class_name: str, where: Placement):
        self.name = name
        self.pipeline = pipeline
        self.class_name = class_name
        self.task = PIPELINE_TASKS[class_name]
        self.placement = where

    @classmethod
    def load(cls, path: Path, name: str, where: Placement | None = None) -> HubPipeline:
        import diffusers

        class_name = pipeline_class_name(path)
        if class_name not in PIPELINE_TASKS:
            raise KilnError(f"Model '{name}' at {path}: pipeline {class_name!r} is not one Kiln serves "
                            f"({', '.join(sorted(PIPELINE_TASKS))})")
        where = where or placement()
        pipeline = getattr(diffusers, class_name).from_pretrained(str(path), torch_dtype=where.dtype, local_files_only=True)
        if hasattr(pipeline, "safety_checker") and getattr(pipeline, "safety_checker", None) is None:
            pipeline.requires_safety_checker = False
        if where.cpu_offload:
            pipeline.enable_model_cpu_offload()
        else:
            pipeline.to(where.device)
        if where.attention_slicing and hasattr(pipeline, "enable_attention_slicing"):
            pipeline.enable_attention_slicing()
        pipeline.set_progress_bar_config(disable=True)
        return cls(name, pipeline, class_name, where)

    # --- what it accepts ---

    @property
    def scale(self) -> int:
        return int(getattr(self.pipeline, "vae_scale_factor", 8))

    @property
    def native(self) -> int:
        size = self.pipeline.unet.config.sample_size
        return int(size if isinstance(size, int) else size[0]) * self.scale

    def describe(self) -> dict[str, Any]:
        return {"resolution": f"{self.native}x{self.native}", "pipeline": self.class_name,
                "device": self.placement.device, "dtype": self.placement.dtype_name}

    # --- generation ---

    def _generator(self, seed: int):
        import torch

        return torch.Generator("cpu").manual_seed(int(seed))

    def _callback(self, on_step: StepCallback | None, total: int) -> dict[str, Any]:
        if on_step is None:
            return {}
        if self.class_name == "TextToVideoSDPipeline":  # the older callback API
            return {"callback": lambda step, timestep, latents: on_step(step + 1, total), "callback_steps": 1}

        def step_end(pipeline, step, timestep, kwargs):
            on_step(step + 1, total)
            return kwargs

        return {"callback_on_step_end": step_end}

    def text_to_image(self, prompt: str, negative_prompt: str | None, width: int, height: int, steps: int,
                      guidance_scale: float, seed: int, on_step: StepCallback | None = None):
        if self.task != "text-to-image":
            raise InvalidInput("model_id", f"model '{self.name}' is a {self.task} pipeline, not text-to-image")
        result = self.pipeline(prompt=prompt, negative_prompt=negative_prompt or None, width=width, height=height,
                               num_inference_steps=steps, guidance_scale=guidance_scale,
                               generator=self._generator(seed), **self._callback(on_step, steps))
        return result.images[0]

    def image_to_image(self, image: Any, prompt: str, negative_prompt: str | None, strength: float, steps: int,
                       guidance_scale: float, seed: int, on_step: StepCallback | None = None):
        """SDEdit with the pipeline's own img2img (built from the same components for a text-to-image model)."""
        if self.task == "image-to-image":
            pipeline = self.pipeline
        elif self.task == "text-to-image":
            from diffusers import AutoPipelineForImage2Image

            pipeline = AutoPipelineForImage2Image.from_pipe(self.pipeline)
        else:
            raise InvalidInput("model_id", f"model '{self.name}' is a {self.task} pipeline; image-to-image needs an image model")
        if strength <= 0:
            return image  # nothing to denoise: the input itself
        total = max(1, int(steps * strength))
        callback = {"callback_on_step_end": (lambda p, s, t, k: (on_step(s + 1, total), k)[1])} if on_step else {}
        result = pipeline(prompt=prompt, negative_prompt=negative_prompt or None, image=image, strength=strength,
                          num_inference_steps=steps, guidance_scale=guidance_scale, generator=self._generator(seed),
                          **callback)
        return result.images[0]

    def text_to_video(self, prompt: str, num_frames: int, steps: int, guidance_scale: float, seed: int,
                      negative_prompt: str | None = None, on_step: StepCallback | None = None) -> list:
        if self.task != "text-to-video":
            raise InvalidInput("model_id", f"model '{self.name}' is a {self.task} pipeline, not text-to-video")
        result = self.pipeline(prompt=prompt, negative_prompt=negative_prompt or None, num_frames=num_frames,
                               num_inference_steps=steps, guidance_scale=guidance_scale,
                               generator=self._generator(seed), output_type="pil", **self._callback(on_step, steps))
        return _frames(result.frames)

    def image_to_video(self, image: Any, num_frames: int, fps: int, steps: int, seed: int,
                       on_step: StepCallback | None = None) -> list:
        if self.task != "image-to-video":
            raise InvalidInput("model_id", f"model '{self.name}' is a {self.task} pipeline, not image-to-video")
        width, height = self.native, self.native
        result = self.pipeline(image=image.convert("RGB").resize((width, height)), num_frames=num_frames, fps=fps,
                               num_inference_steps=steps, height=height, width=width, decode_chunk_size=4,
                               generator=self._generator(seed), output_type="pil", **self._callback(on_step, steps))
        return _frames(result.frames)


def _frames(frames: Any) -> list:
    """The first video of a pipeline's output as PIL images (pipelines answer nested lists or arrays)."""
    import numpy as np
    from PIL import Image

    video = frames[0]
    if isinstance(video, np.ndarray):
        return [Image.fromarray((np.clip(f, 0, 1) * 255).round().astype(np.uint8)) for f in video]
    return list(video)
