"""Kiln's Dagster code location (see workspace.yaml). Assets call kiln; definitions.py assembles them."""

from kiln.settings import set_environment

set_environment()
