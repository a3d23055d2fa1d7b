"""What ``POST /models/download`` may import into the model store, and how much.

The catalog file is trusted: whoever edits it owns the machine. A request body is not: a model outside the
catalog may come from a folder under ``KILN_MODEL_IMPORT_ROOTS`` only (empty by default, so none), or
from a Python package on ``KILN_MODEL_PACKAGES``; packages are located through their distribution metadata
(``kiln.sources.package_model_dir``), never imported. Every import is size-checked against the store quota
(``KILN_MODEL_STORE_QUOTA_BYTES``, default the free space on the store's disk) before it starts.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from kiln.catalog import CatalogEntry
from kiln.errors import Forbidden, ModelNotAvailable, TooLarge
from kiln.settings import Settings


@dataclass(frozen=True)
class ImportPolicy:
    roots: tuple[Path, ...] = ()
    packages: frozenset[str] = frozenset()
    quota_bytes: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ImportPolicy:
        roots = tuple(Path(root).expanduser().resolve() for root in settings.model_import_roots)
        return cls(roots, frozenset(settings.model_packages), settings.model_store_quota_bytes)

    def check_source(self, entry: CatalogEntry, in_catalog: bool) -> None:
        """Refuse (403) a request-named path outside the import roots, or a package not on the allow-list."""
        if in_catalog:
            return
        if entry.source == "path":
            self._check_path(entry)
        elif entry.source == "package":
            if entry.id not in self.packages:
                raise Forbidden(
                    f"Package {entry.id!r} is neither a catalog model nor on KILN_MODEL_PACKAGES: only packages known "
                    "to carry model weights are imported", {"field": "model_id", "allowed_packages": sorted(self.packages)})
            from kiln.sources import package_model_dir

            package_model_dir(entry.id)  # installed and carrying weights, or a clear 503/422 now

    def _check_path(self, entry: CatalogEntry) -> None:
        hint = ("add a catalog entry for it, or set KILN_MODEL_IMPORT_ROOTS to the folders imports may come from"
                if not self.roots else f"import roots: {', '.join(map(str, self.roots))}")
        raw = Path(entry.id).expanduser()
        if not raw.is_absolute():
            raise Forbidden(f"model_id must be an absolute path under an import root; {hint}", {"field": "model_id"})
        folder = raw.resolve()
        root = next((r for r in self.roots if folder == r or r in folder.parents), None)
        if root is None:
            raise Forbidden(f"{raw} is not under an import root (KILN_MODEL_IMPORT_ROOTS); {hint}",
                            {"field": "model_id", "import_roots": [str(r) for r in self.roots]})
        if not folder.exists():
            raise ModelNotAvailable(entry.name, f"The path {folder} does not exist.")
        # A link inside the folder must not lead out of the root (a hard link of it would copy what it names).
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                if path.is_symlink() and not (path.resolve() == root or root in path.resolve().parents):
                    raise Forbidden(f"{path} links outside the import root {root}", {"field": "model_id"})

    def check_size(self, name: str, expected_bytes: int | None, store_root: Path) -> None:
        """Refuse (413) an import that would not fit: under the quota with what the store holds, or on the disk."""
        if expected_bytes is None:
            return  # a hub model of unknown size: the hub download itself reports a full disk
        if self.quota_bytes is not None:
            used = store_bytes(store_root)
            if used + expected_bytes > self.quota_bytes:
                raise TooLarge(
                    f"Importing '{name}' ({expected_bytes / 1e6:.1f} MB) would take the model store to "
                    f"{(used + expected_bytes) / 1e6:.1f} MB, over KILN_MODEL_STORE_QUOTA_BYTES "
                    f"({self.quota_bytes / 1e6:.1f} MB); remove models or raise the quota",
                    {"expected_bytes": expected_bytes, "store_bytes": used, "quota_bytes": self.quota_bytes})
            return
        existing = next((p for p in (store_root, *store_root.parents) if p.exists()), Path("/"))
        free = shutil.disk_usage(existing).free
        if expected_bytes > free:
            raise TooLarge(f"Importing '{name}' needs {expected_bytes / 1e6:.1f} MB; the model store's disk has "
                           f"{free / 1e6:.1f} MB free", {"expected_bytes": expected_bytes, "free_bytes": free})


def store_bytes(root: Path) -> int:
    """Bytes the store holds, each file once however many hard links it has."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            stat = os.lstat(os.path.join(dirpath, name))
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total
