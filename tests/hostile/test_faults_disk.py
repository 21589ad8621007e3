"""Disk faults end to end through the engine (cases 49b, 49c): a full disk, a read-only download folder, and files
deleted or truncated under a seeding torrent. Each must end in a clear error state (never a crash, never a piece
claimed without its data, never short or wrong data served), leave other torrents alone, and recover once the
fault is gone. The storage-level versions are in test_storage_disk_full.py (engineer C); these go through a
``Session`` with a real seeder on loopback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from faultkit import FAST, bad_pieces, remount, seeder, tmpfs, wait_status
from shoal.codec.metainfo import Metainfo
from shoal.engine.handle import TorrentState
from shoal.engine.session import Session
from swarm_helpers import make_payload, make_torrent, same_tree

pytestmark = pytest.mark.timeout(180)

PIECE = 32 * 1024
DONE = (TorrentState.SEEDING, TorrentState.FINISHED)


def _payload(root: Path, name: str, spec: list[tuple[str, int]], seed: int) -> tuple[Path, Path, Metainfo]:
    src = make_payload(root / f"src-{name}" / name, spec, seed=seed)
    data = make_torrent(src, piece_length=PIECE)
    torrent = root / f"{name}.torrent"
    torrent.write_bytes(data)
    return src, torrent, Metainfo.from_bytes(data)


@pytest.fixture
def big(tmp_path: Path) -> tuple[Path, Path, Metainfo]:
    return _payload(tmp_path, "big", [("a.bin", 3_000_000), ("sub/b.bin", 1_000_000)], 3)


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path, Metainfo]:
    return _payload(tmp_path, "small", [("c.bin", 300_000)], 4)


async def test_disk_full_is_an_error_state_and_recovers(
    tmp_path: Path, big: tuple[Path, Path, Metainfo], small: tuple[Path, Path, Metainfo]
) -> None:
    src, torrent, meta = big
    small_src, small_torrent, _ = small
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        async with seeder(torrent, src) as (seed_session, _, addr):
            await seed_session.add(
                small_torrent, save_path=small_src.parent, data_name=small_src.name, force_recheck=True
            )
            async with Session(FAST, listen=("127.0.0.1", 0)) as session:
                full = await session.add(torrent, save_path=mnt, peers=[addr])
                other = await session.add(small_torrent, save_path=tmp_path / "roomy", peers=[addr])
                st = await wait_status(
                    full, lambda s: s.state in (TorrentState.ERROR, *DONE), 60, "disk full"
                )
                assert st.state is TorrentState.ERROR, st
                assert st.error is not None and "no space left" in st.error.lower(), st.error
                assert 0 < st.pieces_have < st.pieces_total
                have = set(full._task.have)  # read-only look at what the engine counts as verified
                assert len(have) == st.pieces_have
                assert not bad_pieces(mnt, meta, have), "a piece counted as verified is not on disk"
                # the other torrent of the same session is not affected
                await other.wait_complete(timeout=60)
                assert same_tree(small_src, tmp_path / "roomy" / small_src.name)
            # space comes back: the same download started again finishes, keeping what it had
            remount(mnt, "size=16m")
            async with Session(FAST, listen=("127.0.0.1", 0)) as session:
                again = await session.add(torrent, save_path=mnt, peers=[addr])
                await again.wait_complete(timeout=60)
                assert again.stats.get("pieces_from_recheck", 0) + again.stats.get(
                    "pieces_from_resume", 0
                ) >= len(have)
    # (the tmpfs is gone here; the check ran while it was mounted)


async def test_disk_full_download_bytes_are_right_after_recovery(
    tmp_path: Path, big: tuple[Path, Path, Metainfo]
) -> None:
    src, torrent, _ = big
    with tmpfs(tmp_path / "mnt", "2m") as mnt:
        async with seeder(torrent, src) as (_, _, addr):
            async with Session(FAST, listen=("127.0.0.1", 0)) as session:
                h = await session.add(torrent, save_path=mnt, peers=[addr])
                await wait_status(h, lambda s: s.state is TorrentState.ERROR, 60, "disk full")
            remount(mnt, "size=16m")
            async with Session(FAST, listen=("127.0.0.1", 0)) as session:
                h = await session.add(torrent, save_path=mnt, peers=[addr])
                await h.wait_complete(timeout=60)
            assert same_tree(src, mnt / src.name)


async def test_read_only_download_folder_then_writable(
    tmp_path: Path, big: tuple[Path, Path, Metainfo]
) -> None:
    src, torrent, _ = big
    with tmpfs(tmp_path / "mnt", "16m") as mnt:
        remount(mnt, "ro")
        async with seeder(torrent, src) as (_, _, addr):
            async with Session(FAST, listen=("127.0.0.1", 0)) as session:
                h = await session.add(torrent, save_path=mnt, peers=[addr])
                st = await wait_status(h, lambda s: s.state in (TorrentState.ERROR, *DONE), 60, "an error")
                assert st.state is TorrentState.ERROR, st
                assert st.error is not None and "read-only" in st.error.lower(), st.error
                assert st.pieces_have == 0
            remount(mnt, "rw")
            async with Session(FAST, listen=("127.0.0.1", 0)) as session:
                h = await session.add(torrent, save_path=mnt, peers=[addr])
                await h.wait_complete(timeout=60)
            assert same_tree(src, mnt / src.name)


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
async def test_file_damaged_under_a_seeding_torrent(
    tmp_path: Path, big: tuple[Path, Path, Metainfo], damage: str
) -> None:
    """Truncated: the seeder's next read comes up short, so it stops with an error naming the file and serves
    nothing short. Deleted: the seeder may still hold the file open (POSIX keeps the data of an unlinked open
    file), so it may either keep serving the *right* bytes or stop with an error; both are fine, wrong data is not.
    """
    src, torrent, meta = big
    data = tmp_path / "seedroot" / src.name
    shutil.copytree(src, data)
    out = tmp_path / "out"
    async with seeder(torrent, data) as (_, seeding, addr):
        if damage == "deleted":
            (data / "a.bin").unlink()
        else:
            with (data / "a.bin").open("r+b") as f:
                f.truncate(500_000)
        async with Session(FAST, listen=("127.0.0.1", 0)) as session:
            h = await session.add(torrent, save_path=out, peers=[addr])
            await wait_status(
                h,
                lambda s: s.state in DONE or seeding.status().state is TorrentState.ERROR,
                60,
                "the seeder's error or the end of the download",
            )
            assert h.stats.get("hash_failures", 0) == 0, "the seeder served wrong or short data"
            assert not bad_pieces(out, meta, set(h._task.have))
            st = seeding.status()
            if damage == "truncated":
                assert st.state is TorrentState.ERROR, st
            if st.state is TorrentState.ERROR:
                assert st.error is not None and "a.bin" in st.error, st.error
                leech = h.status()
                assert leech.state is TorrentState.DOWNLOADING and leech.error is None, leech
                # the file comes back and the seeder is started again: the download completes
                shutil.copy(src / "a.bin", data / "a.bin")
                async with seeder(torrent, data) as (_, _, addr2):
                    h.add_peer(addr2)
                    await h.wait_complete(timeout=60)
    assert same_tree(src, out / src.name)
