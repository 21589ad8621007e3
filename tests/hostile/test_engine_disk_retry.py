"""Case 49b in one session: the disk fills (torrent in the error state, other torrents unaffected), space comes
back, ``Torrent.resume()`` retries and the download completes byte-identical, keeping the pieces it had."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultkit import FAST, remount, seeder, tmpfs, wait_status
from shoal.engine.handle import TorrentState
from shoal.engine.session import Session
from swarm_helpers import make_payload, make_torrent, same_tree

pytestmark = pytest.mark.timeout(120)


async def test_resume_after_disk_full_retries_in_the_same_session(tmp_path: Path) -> None:
    src = make_payload(tmp_path / "src" / "payload", [("a.bin", 3_000_000)], seed=5)
    torrent = tmp_path / "payload.torrent"
    torrent.write_bytes(make_torrent(src, piece_length=64 * 1024))
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        async with seeder(torrent, src) as (_, _, addr), Session(FAST, listen=("127.0.0.1", 0)) as session:
            h = await session.add(torrent, save_path=mnt, peers=[addr])
            st = await wait_status(h, lambda s: s.state is TorrentState.ERROR, 60, "disk full")
            assert st.error is not None and "no space left" in st.error.lower()
            had = st.pieces_have
            assert 0 < had < st.pieces_total
            remount(mnt, "size=16m")
            h.resume()
            assert h.status().error is None
            done = await h.wait_complete(timeout=60)
            assert done.pieces_have == done.pieces_total
            assert h.stats["pieces_downloaded"] == done.pieces_total  # each piece verified once, none lost
        assert same_tree(src, mnt / "payload")  # checked while the tmpfs is mounted
