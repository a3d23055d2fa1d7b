"""The generation models of a workspace: what the model store really holds (the digits diffusion model the
pipeline trains, hub pipelines brought with ``source: path`` or ``huggingface``), resolved by id, loaded once
per process and shared by the routes (``loaded``) and the task workers."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.errors import InvalidInput, KilnError, ModelNotAvailable, NotFound
from kiln.generation import prompts
from kiln.generation.digits import CONFIG_FILE, DigitsDiffusion
from kiln.generation.digits import OUTPUT_SIZES as DIGITS_SIZES
from kiln.generation.hub import KNOWN_HUB_MODELS, PIPELINE_TASKS, HubPipeline, how_to_get, pipeline_class_name
from kiln.store import ModelStore, StoredModel

GENERATION_TASKS = ("text-to-image", "image-to-image", "text-to-video", "image-to-video")
DEFAULT_MODEL = "digits-diffusion"
# what each route can use: the digits model does all four; a hub pipeline what its class does
CAPABLE = {
    "text-to-image": ("text-to-image",),
    "image-to-image": ("text-to-image", "image-to-image"),
    "text-to-video": ("text-to-video",),
    "image-to-video": ("image-to-video",),
}


@dataclass(frozen=True)
class GenerationModel:
    id: str
    version: str
    path: Path
    kind: str  # "digits-ddpm" | "diffusers"
    task: str  # what it does (the digits model: text-to-image, and the other three too)
    description: str
    native: int  # the side it generates at
    scale: int  # sides must be multiples of this (the VAE's factor; the digits model: its native side)
    labels: tuple[str, ...] = ()  # a class-conditional model: what it draws
    default_guidance: float = 7.5  # classifier-free guidance when a request names none

    def can(self, route: str) -> bool:
        return self.kind == "digits-ddpm" or self.task in CAPABLE[route]

    @property
    def resolution(self) -> str:
        return f"{self.native}x{self.native}"

    def sizes(self) -> list[int]:
        return [s for s in DIGITS_SIZES if s >= self.native]

    def check_size(self, width: int | None, height: int | None) -> tuple[int, int]:
        """(width, height) this model makes for the request; InvalidInput (422) naming what it supports."""
        width, height = width or self.native, height or width or self.native
        if self.kind == "digits-ddpm":
            sizes = self.sizes()
            if width != height or width not in sizes:
                raise InvalidInput("width" if width not in sizes else "height",
                                   f"this model makes square images of {', '.join(f'{s}x{s}' for s in sizes)} "
                                   f"(native {self.resolution}), got {width}x{height}")
            return width, height
        largest = 2 * self.native
        for field, value in (("width", width), ("height", height)):
            if value % self.scale or not self.scale * 4 <= value <= largest:
                raise InvalidInput(field, f"this model takes sides that are multiples of {self.scale} from "
                                          f"{self.scale * 4} to {largest} (native {self.resolution}), got {value}")
        return width, height

    def ground(self, prompt: str, video: bool = False) -> None:
        """Refuse (422) a prompt a class-conditional model cannot draw; a hub pipeline takes any text."""
        if self.labels:
            if video:
                prompts.ground_transition(prompt, list(self.labels))
            else:
                prompts.ground_digit(prompt, list(self.labels))


def describe_stored(model: StoredModel, description: str = "") -> GenerationModel | None:
    """What a stored folder is, from its config files alone (nothing is loaded)."""
    if (model.path / CONFIG_FILE).is_file():
        config = json.loads((model.path / CONFIG_FILE).read_text())
        side = int(config["image_size"])
        return GenerationModel(model.name, model.version, model.path, "digits-ddpm", "text-to-image", description,
                               side, side, tuple(config["labels"]), float(config.get("default_guidance_scale", 2.0)))
    class_name = pipeline_class_name(model.path)
    if class_name not in PIPELINE_TASKS:
        return None
    unet, vae = _config(model.path / "unet"), _config(model.path / "vae")
    scale = 2 ** (len(vae.get("block_out_channels", [0, 0, 0, 0])) - 1)
    size = unet.get("sample_size", 64)
    size = size if isinstance(size, int) else size[0]
    return GenerationModel(model.name, model.version, model.path, "diffusers", PIPELINE_TASKS[class_name], description,
                           int(size) * scale, scale)


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


class GenerationModels:
    def __init__(self, store: ModelStore, descriptions: dict[str, str] | None = None):
        self.store = store
        self.descriptions = descriptions or {}
        self._loaded: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def stored(self) -> dict[str, GenerationModel]:
        """Every generation model in the store: its champion version, else its newest."""
        found: dict[str, GenerationModel] = {}
        root = self.store.root
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            versions = [m for m in self.store.versions(folder.name) if m.task in GENERATION_TASKS]
            champions = [m for m in versions if m.info.get("champion")]  # marked by the pipeline's registry stage
            if versions:
                described = describe_stored((champions or versions)[-1], self.descriptions.get(folder.name, ""))
                if described is not None:
                    found[folder.name] = described
        return found

    def listing(self) -> list[dict[str, Any]]:
        """GET /api/text-to-image/models: what is stored, and whether this process has it loaded."""
        rows = []
        for model in self.stored().values():
            loaded = self._loaded.get((model.id, model.version))
            rows.append({
                "id": model.id, "name": model.id, "version": model.version, "task": model.task, "kind": model.kind,
                "description": model.description or KNOWN_HUB_MODELS.get(model.id, ("", "", "", ""))[3],
                "resolution": model.resolution,
                "loaded": loaded is not None,
            })
        return rows

    def resolve(self, model_id: str | None, route: str) -> GenerationModel:
        """The stored model ``model_id`` names (default: the digits model, else the only capable one).

        404 listing the stored models for an unknown id; 503 with how to get it for a known hub model that is
        not stored; 422 when the model cannot do what the route asks."""
        stored = self.stored()
        capable = sorted(name for name, m in stored.items() if m.can(route))
        if model_id is None:
            if DEFAULT_MODEL in stored:
                model_id = DEFAULT_MODEL
            elif capable:
                model_id = capable[0]
            else:
                raise ModelNotAvailable(DEFAULT_MODEL, "Run the pipeline (`make up` or `kiln pipeline`) to train it, "
                                                       "or bring a diffusers pipeline (README: Image and video generation)")
        if model_id not in stored:
            if model_id in KNOWN_HUB_MODELS:
                raise ModelNotAvailable(model_id, how_to_get(model_id))
            raise NotFound(f"Unknown model_id '{model_id}'. Stored generation models: {', '.join(sorted(stored)) or 'none'}",
                           {"model_id": model_id, "available_models": sorted(stored)})
        model = stored[model_id]
        if not model.can(route):
            raise InvalidInput("model_id", f"model '{model_id}' is a {model.task} model; for {route} use one of: "
                                           f"{', '.join(capable) or 'none stored'}")
        return model

    def load(self, model: GenerationModel) -> Any:
        key = (model.id, model.version)
        with self._lock:  # one load per model and process, even when tasks ask at once
            if key not in self._loaded:
                try:
                    loader = DigitsDiffusion if model.kind == "digits-ddpm" else HubPipeline
                    self._loaded[key] = loader.load(model.path, model.id)
                except KilnError:
                    raise
                except Exception as exc:  # corrupt or partial weights: say which model
                    raise KilnError(f"Model '{model.id}' ({model.path}) could not be loaded: {type(exc).__name__}: {exc}") from exc
            return self._loaded[key]


_shared: dict[str, GenerationModels] = {}
_shared_lock = threading.Lock()


def shared_models(store_dir: Path, descriptions: dict[str, str] | None = None) -> GenerationModels:
    """The process's one GenerationModels per model store (routes and task workers see the same loads)."""
    key = str(Path(store_dir).resolve())
    with _shared_lock:
        if key not in _shared:
            _shared[key] = GenerationModels(ModelStore(Path(store_dir)), descriptions)
        elif descriptions:
            _shared[key].descriptions.update(descriptions)
        return _shared[key]
