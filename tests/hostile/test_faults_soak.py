"""A short soak (case 50d, scaled down for CI): one long-lived session downloads, seeds and removes torrents over
and over. File descriptors must come back to the same count every cycle and memory must stop growing after the
first cycles. ``SHOAL_SOAK_CYCLES`` makes it longer (docs/RELIABILITY.md)."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from faultkit import FAST, seeder
from shoal.engine.session import Session
from swarm_helpers import make_payload, make_torrent, same_tree

pytestmark = pytest.mark.timeout(600)

CYCLES = int(os.environ.get("SHOAL_SOAK_CYCLES", "12"))
WARMUP = 4


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


async def test_repeated_downloads_keep_descriptors_and_memory_flat(tmp_path: Path) -> None:
    src = make_payload(tmp_path / "src" / "payload", [("a.bin", 1_500_000), ("b/c.bin", 300_001)], seed=11)
    torrent = tmp_path / "payload.torrent"
    torrent.write_bytes(make_torrent(src, piece_length=32 * 1024))
    fds: list[int] = []
    rss: list[int] = []
    async with seeder(torrent, src) as (_, _, addr), Session(FAST, listen=("127.0.0.1", 0)) as session:
        for cycle in range(CYCLES):
            out = tmp_path / f"out{cycle % 2}"
            h = await session.add(torrent, save_path=out, peers=[addr], resume=False)
            await h.wait_complete(timeout=60)
            assert same_tree(src, out / src.name)
            await session.remove(h)
            for f in (out / src.name).rglob("*"):
                if f.is_file():
                    f.unlink()
            session.alerts().pop_all()  # a consumer drains alerts; the queue itself is bounded
            gc.collect()
            fds.append(_fds())
            rss.append(_rss_kib())
    assert len(set(fds[WARMUP:])) == 1, f"file descriptors drift: {fds}"
    growth = rss[-1] - rss[WARMUP - 1]
    assert growth < 16 * 1024, f"memory grew {growth} KiB after warm-up: {rss}"
