"""The synthesis cache: encoded audio keyed on (text, lang, engine, voice, rate, pitch, volume, format),
with a TTL, in process memory (LRU) or in Redis so several workers share it."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

KEY_PREFIX = "kiln:tts:"


def cache_key(**parts: Any) -> str:
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0

    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return round(self.hits / total, 4) if total else 0.0


class MemoryCache:
    backend = "memory"

    def __init__(self, ttl: int, max_entries: int = 1000, max_bytes: int = 256 * 1024 * 1024):
        self.ttl, self.max_entries, self.max_bytes = ttl, max_entries, max_bytes
        self._items: OrderedDict[str, tuple[float, bytes, dict]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def get(self, key: str) -> tuple[bytes, dict] | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] < time.monotonic():
                if item is not None:
                    self._drop(key)
                self.stats.misses += 1
                return None
            self._items.move_to_end(key)
            self.stats.hits += 1
            return item[1], item[2]

    def set(self, key: str, audio: bytes, meta: dict) -> None:
        if len(audio) > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                self._drop(key)
            self._items[key] = (time.monotonic() + self.ttl, audio, meta)
            self._bytes += len(audio)
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._items)))

    def _drop(self, key: str) -> None:
        _, audio, _ = self._items.pop(key)
        self._bytes -= len(audio)

    def clear(self) -> int:
        with self._lock:
            count = len(self._items)
            self._items.clear()
            self._bytes = 0
            return count

    def describe(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            live = [len(a) for expiry, a, _ in self._items.values() if expiry >= now]
        return {"backend": self.backend, "entries": len(live), "size": sum(live), "ttl": self.ttl,
                "hits": self.stats.hits, "misses": self.stats.misses, "hit_rate": self.stats.hit_rate()}


class RedisCache:
    backend = "redis"

    def __init__(self, url: str, ttl: int):
        import redis

        self.ttl = ttl
        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.client.ping()  # fail at start-up, not on the first request
        self.stats = CacheStats()

    def get(self, key: str) -> tuple[bytes, dict] | None:
        audio, meta = self.client.hmget(KEY_PREFIX + key, ["audio", "meta"])
        if audio is None or meta is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return audio, json.loads(meta)

    def set(self, key: str, audio: bytes, meta: dict) -> None:
        with self.client.pipeline() as pipe:
            pipe.hset(KEY_PREFIX + key, mapping={"audio": audio, "meta": json.dumps(meta)})
            pipe.expire(KEY_PREFIX + key, self.ttl)
            pipe.execute()

    def _keys(self) -> list[bytes]:
        return list(self.client.scan_iter(match=KEY_PREFIX + "*", count=500))

    def clear(self) -> int:
        keys = self._keys()
        if keys:
            self.client.delete(*keys)
        return len(keys)

    def describe(self) -> dict[str, Any]:
        keys = self._keys()
        size = sum(self.client.hstrlen(key, "audio") for key in keys)
        return {"backend": self.backend, "entries": len(keys), "size": size, "ttl": self.ttl,
                "hits": self.stats.hits, "misses": self.stats.misses, "hit_rate": self.stats.hit_rate()}
