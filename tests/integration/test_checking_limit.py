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
