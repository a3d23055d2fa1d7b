"""Process memory: what a process holds (RSS), and handing freed heap pages back to the OS."""

from __future__ import annotations


def trim_process_memory() -> bool:
    """Ask glibc to hand freed heap pages back to the OS (``malloc_trim``); False where unavailable."""
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def process_memory_mb() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 1e6, 1)
