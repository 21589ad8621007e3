"""What the HTTP and UDP front ends share: the swarm backend, per-IP limits, request counters and stats.

A backend is either :class:`MemoryBackend` (the pure :class:`~shoal.trackerd.registry.Registry`, answered
synchronously: the fast path) or an asynchronous store (Redis) with the same methods as coroutines.
"""

from __future__ import annotations

import html
import json
import logging
import socket
import time
from collections import deque
from typing import Any, Protocol

from shoal.tracker.proto.messages import ScrapeStats
from shoal.trackerd.config import TrackerdConfig
from shoal.trackerd.registry import AnnounceResult, RateLimiter, Registry, ServerAnnounce

logger = logging.getLogger(__name__)


class AsyncBackend(Protocol):
    async def announce(self, req: ServerAnnounce, now: float) -> AnnounceResult: ...
    async def scrape(self, hashes: list[bytes], passkey: str | None) -> dict[bytes, ScrapeStats]: ...
    async def full_scrape(self, passkey: str | None) -> dict[bytes, ScrapeStats]: ...
    async def stats(self) -> dict[str, int]: ...
    async def shared_secret(self) -> bytes: ...
    async def close(self) -> None: ...


class MemoryBackend:
    """The in-process registry; its calls never wait."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry


Backend = MemoryBackend | AsyncBackend


def pack_ip(host: str) -> tuple[str, bytes]:
    """Normalise a peer's address (IPv4-mapped IPv6 becomes IPv4) and pack it."""
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    if ":" in host:
        return host, socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
    return host, socket.inet_aton(host)


class TrackerService:
    """Shared state of one tracker process."""

    def __init__(self, config: TrackerdConfig, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self.registry = backend.registry if isinstance(backend, MemoryBackend) else None
        self.limiter = RateLimiter(config.ip_rate, config.ip_burst, config.max_tracked_ips)
        self.requests = 0
        self.announces = 0  # counted by the front ends (this process only, whatever the backend)
        self.rate_limited = 0
        self.dropped_udp = 0
        self.bad_requests = 0
        self._samples: deque[tuple[float, int, int]] = deque(maxlen=64)
        self.started_at = time.time()

    def allow(self, ip: str, now: float) -> bool:
        self.requests += 1
        if self.limiter.allow(ip, now):
            return True
        self.rate_limited += 1
        return False

    def sample(self, now: float) -> None:
        """Record the counters (called every few seconds) for the per-second figures."""
        self._samples.append((now, self.requests, self.announces))

    def per_second(self) -> tuple[float, float]:
        """(requests, announces) per second over the last ~30 s of samples."""
        if len(self._samples) < 2:
            return 0.0, 0.0
        (t0, r0, a0), (t1, r1, a1) = self._samples[max(0, len(self._samples) - 7)], self._samples[-1]
        if t1 <= t0:
            return 0.0, 0.0
        return (r1 - r0) / (t1 - t0), (a1 - a0) / (t1 - t0)

    async def stats(self) -> dict[str, Any]:
        if self.registry is not None:
            swarm = self.registry.stats()
        else:
            assert not isinstance(self.backend, MemoryBackend)
            swarm = await self.backend.stats()
        return {
            **swarm,
            "requests": self.requests,
            "requests_per_second": round(self.per_second()[0], 1),
            "announces_per_second": round(self.per_second()[1], 1),
            "rate_limited": self.rate_limited,
            "bad_requests": self.bad_requests,
            "dropped_udp": self.dropped_udp,
            "uptime": round(time.time() - self.started_at, 1),
            "private": self.config.private,
            "backend": "memory" if self.registry is not None else "redis",
        }


def stats_json(stats: dict[str, Any]) -> bytes:
    return json.dumps(stats, sort_keys=True).encode()


def stats_html(stats: dict[str, Any]) -> bytes:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in sorted(stats.items())
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>shoal tracker</title></head>"
        f"<body><h1>shoal tracker</h1><table>{rows}</table>"
        "<p><a href='/stats.json'>JSON</a></p></body></html>"
    ).encode()
