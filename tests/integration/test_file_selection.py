"""Choosing files between Shoal sessions: an unselected file is never created (its share of a piece waits in a
part file), selecting it later moves that in and downloads the rest, and a restart keeps what the part files hold."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from shoal.config import Settings
from shoal.engine.handle import Torrent, TorrentState
from shoal.engine.session import Session
from shoal.types import PeerAddr
from swarm_helpers import MULTI_FILE_SPEC, make_payload, make_torrent

# files in torrent order: empty.txt, small.bin, sub/big.bin, sub/deeper/tail.dat
NOT_BIG = [1, 1, 0, 1]
PIECE = 64 * 1024


def settings() -> Settings:
    return Settings(engine_tick_interval=0.1, choke_interval=1.0)


def parts(root: Path) -> list[str]:
    return sorted(p.name for p in (root / ".shoal.parts").glob("*/*"))


@contextlib.asynccontextmanager
async def all_but_big(tmp_path: Path) -> AsyncIterator[tuple[Path, bytes, Torrent]]:
    """A Shoal seeder and a leecher that has downloaded every file but big.bin into ``tmp_path / "dl"``: (the
    source folder, the torrent, the leecher's torrent), both sessions open."""
    src = make_payload(tmp_path / "src" / "multi", MULTI_FILE_SPEC)
    raw = make_torrent(src, piece_length=PIECE)
    async with Session(settings(), listen=("127.0.0.1", 0)) as seeder:
        await (await seeder.add(raw, save_path=src.parent)).wait_complete(timeout=10)
        peer = PeerAddr("127.0.0.1", seeder.listen_port)
        async with Session(settings(), listen=("127.0.0.1", 0)) as leecher:
            t = await leecher.add(raw, save_path=tmp_path / "dl", file_priorities=NOT_BIG, peers=[peer])
            await t.wait_complete(timeout=30)
            yield src, raw, t


async def test_an_unselected_file_stays_off_disk_until_it_is_selected(tmp_path: Path) -> None:
    dl = tmp_path / "dl"
    async with all_but_big(tmp_path) as (src, _, t):
        status = t.status()
        assert status.total_wanted < 3 * PIECE + 100_000  # small.bin and tail.dat, with their pieces
        for name in ("empty.txt", "small.bin", "sub/deeper/tail.dat"):
            assert (dl / "multi" / name).read_bytes() == (src / name).read_bytes()
        assert not (dl / "multi" / "sub" / "big.bin").exists()
        assert parts(dl) == ["2.part"]  # big.bin's bytes of the pieces it shares with its neighbours

        t.set_file_priorities([1, 1, 1, 1])
        await t.wait_complete(timeout=30)
        assert (dl / "multi" / "sub" / "big.bin").read_bytes() == (src / "sub" / "big.bin").read_bytes()
        assert not (dl / ".shoal.parts").exists()


async def test_a_restart_keeps_what_the_part_files_hold(tmp_path: Path) -> None:
    dl = tmp_path / "dl"
    async with all_but_big(tmp_path) as (src, raw, _):
        pass

    # the same choice again, without resume data and without peers: every wanted piece is found on disk, the
    # shared ones in the part file
    async with Session(settings(), listen=("127.0.0.1", 0)) as again:
        t = await again.add(raw, save_path=dl, file_priorities=NOT_BIG, resume=False)
        status = await t.wait_complete(timeout=30)
        assert status.downloaded == 0

    # every file wanted now, still without peers: the part file moves into big.bin, so the shared pieces count
    async with Session(settings(), listen=("127.0.0.1", 0)) as everything:
        t = await everything.add(raw, save_path=dl, resume=False)
        for _ in range(200):
            if t.status().state is TorrentState.DOWNLOADING:
                break
            await asyncio.sleep(0.05)
        assert t.status().state is TorrentState.DOWNLOADING  # checked, big.bin's other pieces missing
        assert not (dl / ".shoal.parts").exists()
        big = (dl / "multi" / "sub" / "big.bin").read_bytes()
        source = (src / "sub" / "big.bin").read_bytes()
        big_at = 1000  # big.bin follows small.bin
        shared_tail = (big_at + len(source)) // PIECE  # the piece big.bin shares with tail.dat
        assert big[: PIECE - big_at] == source[: PIECE - big_at]  # its share of piece 0
        assert big[shared_tail * PIECE - big_at :] == source[shared_tail * PIECE - big_at :]
        last = (big_at + len(source) + 77_777 - 1) // PIECE
        assert t.status().pieces_have == 1 + last - shared_tail + 1  # piece 0, the shared one and tail.dat's
