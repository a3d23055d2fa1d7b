"""One partition per catalog model. Dynamic, so a model added to the catalog at run time gets its own
partition: the catalog sensor adds it within a tick, and ``kiln pipeline`` adds it before it runs."""

from __future__ import annotations

import dagster as dg

CATALOG_PARTITIONS = "catalog_models"

catalog_models = dg.DynamicPartitionsDefinition(name=CATALOG_PARTITIONS)


def sync_catalog_partitions(instance: dg.DagsterInstance, names: list[str]) -> list[str]:
    """Add a partition for every catalog model that has none yet; returns the ones added."""
    existing = set(instance.get_dynamic_partitions(CATALOG_PARTITIONS))
    missing = [name for name in names if name not in existing]
    if missing:
        instance.add_dynamic_partitions(CATALOG_PARTITIONS, missing)
    return missing
