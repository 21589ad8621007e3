"""The HTTP front end's protocol object fed bytes directly (no sockets)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from shoal.trackerd.config import TrackerdConfig
from shoal.trackerd.http import HttpTracker
from shoal.trackerd.registry import AnnounceResult, Registry, ServerAnnounce
from shoal.trackerd.service import MemoryBackend, TrackerService

GOOD = b"GET /announce?info_hash=" + b"a" * 20 + b"&peer_id=" + b"b" * 20 + b"&port=1 HTTP/1.1\r\n\r\n"


class FakeTransport:
    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str) -> Any:
        return ("192.0.2.7", 4444) if name == "peername" else None

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class BrokenRegistry(Registry):
    def announce(self, req: ServerAnnounce, now: float) -> AnnounceResult:
        raise RuntimeError("a bug")


def make(registry_class: type[Registry] = Registry) -> HttpTracker:
    cfg = TrackerdConfig()
    tracker = HttpTracker(TrackerService(cfg, MemoryBackend(registry_class(cfg, random.Random(1)))))
    tracker.start()
    return tracker


async def test_pipelined_requests_answered_in_order() -> None:
    tracker = make()
    t = FakeTransport()
    p = tracker.protocol()
    p.connection_made(t)  # type: ignore[arg-type]
    p.data_received(GOOD + GOOD[:10])
    p.data_received(GOOD[10:])
    assert len(t.out) == 2 and all(o.startswith(b"HTTP/1.1 200 OK") for o in t.out) and not t.closed
    tracker.close_all()


async def test_a_bug_costs_one_answer(caplog: pytest.LogCaptureFixture) -> None:
    tracker = make(BrokenRegistry)
    t = FakeTransport()
    p = tracker.protocol()
    p.connection_made(t)  # type: ignore[arg-type]
    p.data_received(GOOD)
    assert t.out[0].startswith(b"HTTP/1.1 500") and t.closed
    assert "tracker request from 192.0.2.7 failed" in caplog.text
    t2 = FakeTransport()
    p2 = tracker.protocol()
    p2.connection_made(t2)  # type: ignore[arg-type]
    p2.data_received(b"GET /stats.json HTTP/1.1\r\n\r\n")  # still serving (answered asynchronously)
    async with asyncio.timeout(5):
        while not t2.out:
            await asyncio.sleep(0.01)
    assert t2.out[0].startswith(b"HTTP/1.1 200 OK")
    tracker.close_all()
