"""The models a device session can hold: a ``modelPath`` of seed 004 names a model of Kiln's store (never a
path on the server), its ``modelType`` maps to what Kiln does with it, and ``load_on`` puts it on a torch
device: a generation model (the digits diffusion UNet, a diffusers pipeline) or an inference engine."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.errors import BadRequest, KilnError, NotFound
from kiln.store import ModelStore, StoredModel

# diffusers pipeline class -> seed 004's model type
PIPELINE_TYPES = {
    "StableDiffusionXLPipeline": "sdxl", "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "StableDiffusionPipeline": "sd15", "StableDiffusionImg2ImgPipeline": "sd15",
    "TextToVideoSDPipeline": "text-to-video", "StableVideoDiffusionPipeline": "svd",
}
ALIASES = {"sd21": "sd15", "sd2": "sd15", "sd": "sd15", "stable-diffusion": "sd15", "digits": "digits-diffusion"}
GENERATION_TYPES = ("digits-diffusion", "sdxl", "sd15", "text-to-video", "svd")
# A store name: what the pipeline writes (letters, digits, . _ -), optionally "models/<name>" and ":<version>".
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ModelNotFound(NotFound):
    code = "MODEL_NOT_FOUND"


class InvalidParameters(BadRequest):
    code = "INVALID_PARAMETERS"

    def __init__(self, field: str, value: Any, constraint: str, message: str):
        super().__init__(message, {"field": field, "value": value, "constraint": constraint})


@dataclass(frozen=True)
class DeviceModel:
    """A stored model as a session sees it."""

    name: str
    version: str
    path: Path
    model_type: str  # digits-diffusion | sdxl | sd15 | ... | an engine task (classification, ...)
    kind: str  # "generation" | "engine"
    task: str  # the store's task
    size_bytes: int

    @property
    def components(self) -> list[str]:
        """What the model is made of: the folders of a diffusers pipeline, the digits model's unet."""
        folders = sorted(p.name for p in self.path.iterdir() if p.is_dir() and not p.name.startswith("."))
        return folders or ["weights"]


def parse_model_path(model_path: str) -> tuple[str, str | None]:
    """(name, version) from "name", "models/name", "name:version" or "models/name/version". Anything that
    could reach outside the store (absolute paths, "..", backslashes, other characters) is a 400."""
    raw = model_path.strip()
    if not raw or len(raw) > 300:
        raise InvalidParameters("modelPath", model_path, "required", "Invalid modelPath: give a stored model's name")
    if raw.startswith(("/", "~")) or "\\" in raw or ".." in raw or "\x00" in raw or re.match(r"^[A-Za-z]:", raw):
        raise InvalidParameters("modelPath", model_path, "store name",
                                "Invalid modelPath: it names a model of Kiln's store (e.g. 'digits-diffusion' or "
                                "'models/digits-diffusion'), never a path on the server")
    parts = raw.split("/")
    if parts[0] == "models":
        parts = parts[1:]
    name, _, version = parts[0].partition(":") if parts else ("", "", "")
    if len(parts) == 2 and not version:
        version = parts[1]
    if len(parts) not in (1, 2) or not NAME.match(name) or (version and not NAME.match(version)):
        raise InvalidParameters("modelPath", model_path, "store name",
                                f"Invalid modelPath '{model_path}': expected 'name', 'models/name' or 'name:version'")
    return name, version or None


def model_type_of(model: StoredModel) -> tuple[str, str]:
    """(model type, kind) of a stored model, from its files alone."""
    from kiln.generation.digits import CONFIG_FILE
    from kiln.generation.hub import pipeline_class_name

    if (model.path / CONFIG_FILE).is_file():
        return "digits-diffusion", "generation"
    class_name = pipeline_class_name(model.path)
    if class_name in PIPELINE_TYPES:
        return PIPELINE_TYPES[class_name], "generation"
    return model.task, "engine"


def stored_models(store_dir: Path) -> dict[str, DeviceModel]:
    """Every model of the store a session can hold (its champion version, else its newest)."""
    from kiln.engines import engine_classes

    store, found = ModelStore(store_dir), {}
    tasks = set(engine_classes())
    for folder in sorted(store.root.iterdir()) if store.root.is_dir() else []:
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        versions = store.versions(folder.name)
        if versions:
            chosen = ([m for m in versions if m.info.get("champion")] or versions)[-1]
            found[folder.name] = describe(chosen, tasks)
    return {name: model for name, model in found.items() if model is not None}


def describe(model: StoredModel, engine_tasks: set[str]) -> DeviceModel | None:
    model_type, kind = model_type_of(model)
    if kind == "engine" and model_type not in engine_tasks:
        return None
    return DeviceModel(model.name, model.version, model.path, model_type, kind, model.task, model.size_bytes)


def resolve(store_dir: Path, model_path: str, model_type: str | None) -> DeviceModel:
    """The stored model ``model_path`` names, checked against ``model_type``; 404 listing the stored ones."""
    name, version = parse_model_path(model_path)
    stored = stored_models(store_dir)
    if name not in stored:
        raise ModelNotFound(f"Model '{model_path}' is not in this server's model store",
                            {"modelPath": model_path, "availableModels": sorted(stored),
                             "howToGet": "models come from the catalog through the pipeline (`kiln pipeline -m <name>`)"})
    model = stored[name]
    if version and version != model.version:
        versions = ModelStore(store_dir).versions(name)
        match = next((v for v in versions if v.version == version), None)
        if match is None:
            raise ModelNotFound(f"Model '{name}' has no version '{version}'",
                                {"modelPath": model_path, "versions": [v.version for v in versions]})
        model = describe(match, {model.task}) or model
    if model_type:
        wanted = ALIASES.get(model_type.lower(), model_type.lower())
        if wanted != model.model_type:
            raise InvalidParameters("modelType", model_type, f"'{model.model_type}' for this model",
                                    f"Invalid modelType: '{name}' is a {model.model_type} model, not {model_type}")
    return model


@dataclass
class Loaded:
    """A model on a device: ``runner`` is a DigitsDiffusion, a HubPipeline or an inference Engine."""

    model: DeviceModel
    torch_device: str
    runner: Any


def warm_imports(model: DeviceModel) -> None:
    """Import the libraries a load needs first, so a session's measured memory is the model's, not theirs."""
    import torch  # noqa: F401

    if model.kind == "generation":
        import diffusers  # noqa: F401
        from diffusers import UNet2DModel  # noqa: F401
    else:
        from kiln.engines import engine_classes

        engine_classes()


def load_on(model: DeviceModel, torch_device: str) -> Loaded:
    """Load ``model`` onto ``torch_device`` (fp32 on the CPU; fp16 for diffusers pipelines on CUDA)."""
    try:
        if model.model_type == "digits-diffusion":
            import json

            from diffusers import UNet2DModel

            from kiln.generation.digits import CONFIG_FILE, DigitsDiffusion

            unet = UNet2DModel.from_pretrained(str(model.path / "unet")).to(torch_device)
            runner: Any = DigitsDiffusion(model.name, unet, json.loads((model.path / CONFIG_FILE).read_text()))
        elif model.kind == "generation":
            from kiln.generation.hub import HubPipeline, Placement

            cuda = torch_device.startswith("cuda")
            where = Placement(torch_device, "float16" if cuda else "float32", attention_slicing=not cuda, cpu_offload=False)
            runner = HubPipeline.load(model.path, model.name, where)
        else:
            from kiln.engines import load_engine

            runner = load_engine(model.task, model.path, model.name, device=torch_device)
            if runner.device != torch_device:  # no torch weights (ONNX Runtime, OpenCV, dlib): it cannot move
                raise InvalidParameters("deviceId", torch_device, runner.device, f"Model '{model.name}' "
                                        f"({model.model_type}) runs on {runner.device} only; load it on cpu-0")
    except KilnError:
        raise
    except Exception as exc:  # corrupt or partial weights: say which model
        raise KilnError(f"Model '{model.name}' ({model.path.name}) could not be loaded on {torch_device}: "
                        f"{type(exc).__name__}: {exc}") from exc
    make_resident(runner)
    return Loaded(model, torch_device, runner)


def torch_modules(runner: Any) -> list[Any]:
    """The torch modules holding a loaded model's weights."""
    import torch

    if hasattr(runner, "unet") and isinstance(runner.unet, torch.nn.Module):  # the digits model
        return [runner.unet]
    if hasattr(runner, "pipeline"):  # a diffusers pipeline
        return [c for c in runner.pipeline.components.values() if isinstance(c, torch.nn.Module)]
    module = runner.torch_module() if hasattr(runner, "torch_module") else None
    return [module] if isinstance(module, torch.nn.Module) else []


def make_resident(runner: Any) -> int:
    """Read every weight once. safetensors maps weight files lazily: until a page is read it is not in memory,
    so a load would measure a fraction of the model and the first request would pay the page faults."""
    import torch

    count = 0
    with torch.no_grad():
        for module in torch_modules(runner):
            for tensor in [*module.parameters(), *module.buffers()]:
                if tensor.numel():
                    tensor.reshape(-1)[:: max(1, 4096 // tensor.element_size())].sum()  # one read per page
                    count += tensor.numel() * tensor.element_size()
    return count
