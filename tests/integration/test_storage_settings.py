"""The session's disk settings reach each torrent's FileStorage: write-behind, direct writes, the write chunk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shoal.config import Settings
from shoal.engine.session import Session
from shoal.storage import direct_io, write_behind
from swarm_helpers import make_payload, make_torrent

pytestmark = pytest.mark.timeout(60)


async def storage_with(tmp_path: Path, settings: Settings) -> Any:
    src = make_payload(tmp_path / "data", [("a.bin", 40_000)], seed=3)
    async with Session(settings, listen=None) as session:
        handle = await session.add(make_torrent(src, piece_length=16 * 1024), save_path=src.parent)
        await handle.wait_complete(timeout=30)
        return handle._task.transfer.storage


async def test_disk_settings_reach_the_storage(tmp_path: Path) -> None:
    st = await storage_with(
        tmp_path, Settings(disk_write_behind=0, disk_direct_writes=False, disk_write_chunk=64 << 10)
    )
    assert st._writer._behind is None
    assert st._writer._direct_fds is None
    assert st._writer._write_chunk == 64 << 10


async def test_by_default_downloads_stay_out_of_the_page_cache(tmp_path: Path) -> None:
    st = await storage_with(tmp_path, Settings())
    assert (st._writer._behind is not None) == write_behind.write_behind_works()
    assert (st._writer._direct_fds is not None) == direct_io.direct_io_works()
    assert st._writer._behind is None or st._writer._behind.window == 64 << 20
