"""Errors of access control (the API turns them into 401/403 in each path's seed format)."""

from __future__ import annotations

from kiln.errors import Forbidden, Unauthorized

__all__ = ["Forbidden", "InsecureConfiguration", "Unauthorized"]


class InsecureConfiguration(RuntimeError):
    """A setting that must not reach production (raised at start, so the server refuses to run)."""
