from __future__ import annotations

import asyncio
import random

from shoal.trackerd.config import TrackerdConfig
from shoal.trackerd.registry import Registry
from shoal.trackerd.service import MemoryBackend, TrackerService, pack_ip, stats_html, stats_json


def test_rates_from_samples() -> None:
    cfg = TrackerdConfig()
    svc = TrackerService(cfg, MemoryBackend(Registry(cfg, random.Random(1))))
    assert svc.per_second() == (0.0, 0.0)
    svc.sample(100.0)
    svc.requests += 50
    svc.announces += 20
    svc.sample(110.0)
    assert svc.per_second() == (5.0, 2.0)
    stats = asyncio.run(svc.stats())
    assert stats["announces_per_second"] == 2.0 and stats["backend"] == "memory"


def test_pack_ip_normalises_mapped_addresses() -> None:
    assert pack_ip("::ffff:10.0.0.1") == ("10.0.0.1", bytes([10, 0, 0, 1]))
    assert pack_ip("::1") == ("::1", bytes(15) + b"\x01")
    assert pack_ip("fe80::1%eth0")[1][:2] == b"\xfe\x80"


def test_stats_page_escapes() -> None:
    page = stats_html({"<script>": "<b>"})
    assert b"<script>" not in page and b"&lt;script&gt;" in page
    assert stats_json({"b": 1, "a": 2}) == b'{"a": 2, "b": 1}'
