"""Rate limits with the ``limits`` library: a moving window per (route group, client), in memory by
default or in Redis (KILN_REDIS_URL) so several gateway processes share the counts."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

from limits import RateLimitItem, parse

from kiln.settings import Settings

log = logging.getLogger("kiln.access")

GROUPS = ("generation", "status", "auth", "devices")
# Not a route group: counted by the devices surface per device (seed 004: inference per device).
DEVICE_INFERENCE = "device_inference"


def failure_identity(ip: str, account: str) -> str:
    return f"ip:{ip}|{account.lower()[:128]}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # epoch seconds when the window frees a slot

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset - time.time()))

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


def governing(decisions: Iterable[Decision | None]) -> Decision | None:
    """The one decision a response's X-RateLimit headers tell when several limits counted the request (the
    route group's per key, seed 004's per device): the one that refused it, else the tightest (fewest
    remaining; of equals, the smaller limit). None when nothing was counted."""
    counted = [d for d in decisions if d is not None]
    refused = [d for d in counted if not d.allowed]
    return min(refused or counted, key=lambda d: (d.remaining, d.limit), default=None)


class RateLimiter:
    def __init__(self, settings: Settings):
        from limits.aio.storage import MemoryStorage, RedisStorage
        from limits.aio.strategies import MovingWindowRateLimiter

        self.limits: dict[str, RateLimitItem] = {
            "generation": parse(settings.rate_limit_generation),
            "status": parse(settings.rate_limit_status),
            "auth": parse(settings.rate_limit_auth),
            "devices": parse(settings.rate_limit_devices),
            DEVICE_INFERENCE: parse(settings.rate_limit_device_inference),
        }
        self.prefix = settings.rate_limit_prefix
        if settings.redis_url:
            uri = settings.redis_url if settings.redis_url.startswith("async+") else f"async+{settings.redis_url}"
            self.storage = RedisStorage(uri, implementation="redispy", key_prefix=self.prefix)
            self.backend = "redis"
        else:
            self.storage = MemoryStorage()
            self.backend = "memory"
        self.strategy = MovingWindowRateLimiter(self.storage)

    def describe(self) -> dict[str, str]:
        return {group: str(item) for group, item in self.limits.items()}

    async def hit(self, group: str, identity: str) -> Decision | None:
        """Count one request; None if the storage is unreachable (logged: serving goes on unlimited, since a
        down Redis must not take the API down with it)."""
        return await self.hit_in(group, group, identity)

    # --- lockout: failed credentials count per (client IP, account), so guessing one account from one
    # address locks only that pair; the right credential for any other account, or from elsewhere, gets in.

    async def locked_out(self, ip: str, account: str) -> Decision | None:
        """A refusing Decision when (ip, account) used up its failures in the window; None otherwise."""
        item, identity = self.limits["auth"], failure_identity(ip, account)
        try:
            if await self.strategy.test(item, self.prefix, "auth-failures", identity):
                return None
            stats = await self.strategy.get_window_stats(item, self.prefix, "auth-failures", identity)
        except Exception as exc:  # noqa: BLE001 - as in hit()
            log.error("Rate limit storage (%s) failed: %s; lockout not checked", self.backend, type(exc).__name__)
            return None
        return Decision(False, item.amount, 0, math.ceil(stats.reset_time))

    async def failed(self, ip: str, account: str) -> Decision | None:
        """Count one failed credential for (ip, account)."""
        return await self.hit_in("auth-failures", "auth", failure_identity(ip, account))

    async def hit_in(self, namespace: str, group: str, identity: str) -> Decision | None:
        item = self.limits[group]
        try:
            allowed = await self.strategy.hit(item, self.prefix, namespace, identity)
            stats = await self.strategy.get_window_stats(item, self.prefix, namespace, identity)
        except Exception as exc:  # noqa: BLE001 - as in hit()
            log.error("Rate limit storage (%s) failed: %s; request not limited", self.backend, type(exc).__name__)
            return None
        return Decision(allowed, item.amount, max(0, stats.remaining), math.ceil(stats.reset_time))

    async def usage(self, group: str, identity: str) -> dict:
        item = self.limits[group]
        stats = await self.strategy.get_window_stats(item, self.prefix, group, identity)
        return {
            "limit": item.amount,
            "window_seconds": item.get_expiry(),
            "used": item.amount - max(0, stats.remaining),
            "remaining": max(0, stats.remaining),
            "reset": math.ceil(stats.reset_time),
        }
