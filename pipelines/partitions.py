"""One partition per catalog model."""

from __future__ import annotations

import dagster as dg

from kiln.catalog import load_catalog
from kiln.settings import get_settings

catalog_models = dg.StaticPartitionsDefinition(load_catalog(get_settings().catalog_file).names())
