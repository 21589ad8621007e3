"""``max_checking_torrents``: a session checks at most that many torrents' data at once; the others wait in CHECKING.

A thousand torrents starting together used to hash all at once, each with its workers' buffers (issue 7: 1,000
seeding torrents).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from shoal.config import Settings
from shoal.engine.session import Session
from shoal.storage.files import FileStorage
from swarm_helpers import make_payload, make_torrent

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("limit", [1, 2])
async def test_at_most_max_checking_torrents_hash_at_once(tmp_path: Path, limit: int) -> None:
    active = peak = 0

    class CountingStorage(FileStorage):
        async def hash_run(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            try:
                await asyncio.sleep(0.05)  # long enough for every other torrent to try
                return await super().hash_run(*args, **kwargs)
            finally:
                active -= 1

    torrents = []
    for i in range(limit + 3):
        src = make_payload(tmp_path / "data" / f"t{i}", [("a.bin", 40_000)], seed=i)
        torrents.append((src, make_torrent(src, piece_length=16 * 1024)))
    settings = Settings(max_checking_torrents=limit)
    async with Session(settings, listen=None, storage_factory=CountingStorage) as session:
        handles = [
            await session.add(data, save_path=src.parent, force_recheck=True, use_trackers=False)
            for src, data in torrents
        ]
        for h in handles:
            await h.wait_complete(timeout=30)
    assert peak == limit


async def test_verified_pieces_are_trusted_without_hashing(tmp_path: Path) -> None:
    """``verified_pieces`` (``shoal seed`` hashed them in forked processes first): nothing is hashed, those
    pieces are had; a piece number outside the torrent is an error of that torrent, not of the session."""
    hashed = 0

    class CountingStorage(FileStorage):
        async def hash_run(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal hashed
            hashed += 1
            return await super().hash_run(*args, **kwargs)

    src = make_payload(tmp_path / "data" / "t", [("a.bin", 100_000)], seed=1)
    data = make_torrent(src, piece_length=16 * 1024)  # 7 pieces
    async with Session(Settings(), listen=None, storage_factory=CountingStorage) as session:
        h = await session.add(
            data, save_path=src.parent, verified_pieces=range(7), force_recheck=False, use_trackers=False
        )
        await h.wait_complete(timeout=30)
        assert h.status().pieces_have == 7 and hashed == 0
        await session.remove(h)
        partial = await session.add(data, save_path=src.parent, verified_pieces=[0, 3], use_trackers=False)
        for _ in range(200):
            if partial.status().state.value != "checking":
                break
            await asyncio.sleep(0.01)
        assert partial.status().pieces_have == 2 and hashed == 0
        await session.remove(partial)
        bad = await session.add(data, save_path=src.parent, verified_pieces=[7], use_trackers=False)
        for _ in range(200):
            if bad.status().state.value == "error":
                break
            await asyncio.sleep(0.01)
        st = bad.status()
        assert st.state.value == "error" and "verified piece 7" in (st.error or "")
