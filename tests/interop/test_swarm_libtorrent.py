"""Acceptance (issue 3) with libtorrent and opentracker: Shoal downloads from libtorrent and seeds to it.

Shoal runs as the real CLI (`shoal get` / `shoal seed` subprocesses); the multi-file torrent has an empty file, a
file smaller than a piece, a file spanning many pieces and a short, non-power-of-two last piece.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from interop.conftest import SAMPLE_PIECE
from interop.harness import content
from interop.harness.libtorrent_peer import LtSession
from interop.harness.opentracker import OpenTracker
from swarm_helpers import (
    MULTI_FILE_SPEC,
    ShoalProc,
    make_payload,
    shoal_get,
    shoal_seed,
    wait_seed_registered,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


@pytest.fixture
def sample(tmp_path: Path) -> content.Content:
    """The acceptance layout (swarm_helpers.MULTI_FILE_SPEC scaled to 64 KiB pieces)."""
    root = make_payload(tmp_path / "seed" / "shapes", MULTI_FILE_SPEC)
    return content.Content(path=root, files=dict(MULTI_FILE_SPEC))


def _torrent(
    tmp_path: Path, sample: content.Content, ot: OpenTracker, udp: bool = False
) -> content.TorrentFile:
    url = ot.udp_url if udp else ot.announce_url
    t = content.make_torrent(sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE, trackers=[url])
    ot.allow(t.info_hash)
    return t


def test_layout_has_the_acceptance_shapes(sample: content.Content) -> None:
    sizes = sample.files
    assert sizes["empty.txt"] == 0
    assert 0 < sizes["small.bin"] < SAMPLE_PIECE
    assert sizes["sub/big.bin"] > 4 * SAMPLE_PIECE
    last = sum(sizes.values()) % SAMPLE_PIECE
    assert last and last & (last - 1)  # short last piece, not a power of two


def test_shoal_downloads_from_libtorrent(
    tmp_path: Path,
    sample: content.Content,
    make_tracker: Callable[..., OpenTracker],
    make_lt: Callable[..., LtSession],
) -> None:
    ot = make_tracker()
    t = _torrent(tmp_path, sample, ot)
    seeder = make_lt()
    hs = seeder.add(t.path, sample.parent, seed=True)
    seeder.wait_announced(hs, timeout=15)
    with shoal_get(t.path, tmp_path / "dl", tmp_path / "shoal", "--no-seed", "--timeout", "90") as sh:
        code = sh.wait_exit(timeout=120)
        assert code == 0, sh.log()
        st = sh.stats()
    assert st["state"] in ("finished", "seeding")
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


def test_shoal_downloads_selected_files_from_libtorrent(
    tmp_path: Path,
    sample: content.Content,
    make_tracker: Callable[..., OpenTracker],
    make_lt: Callable[..., LtSession],
) -> None:
    """``shoal get --files 3`` (tail.dat alone): the file it shares a piece with (big.bin) is never created; its
    share of that piece waits in a part file."""
    ot = make_tracker()
    t = _torrent(tmp_path, sample, ot)
    seeder = make_lt()
    hs = seeder.add(t.path, sample.parent, seed=True)
    seeder.wait_announced(hs, timeout=15)
    dl = tmp_path / "dl"
    with shoal_get(t.path, dl, tmp_path / "shoal", "--no-seed", "--timeout", "90", "--files", "3") as sh:
        code = sh.wait_exit(timeout=120)
        assert code == 0, sh.log()
    tail = "sub/deeper/tail.dat"
    assert (dl / sample.name / tail).read_bytes() == (sample.path / tail).read_bytes()
    assert not (dl / sample.name / "sub" / "big.bin").exists()
    assert not (dl / sample.name / "small.bin").exists()
    assert [p.name for p in (dl / ".shoal.parts").glob("*/*")] == ["2.part"]


def test_libtorrent_downloads_from_shoal(
    tmp_path: Path,
    sample: content.Content,
    make_tracker: Callable[..., OpenTracker],
    make_lt: Callable[..., LtSession],
) -> None:
    ot = make_tracker()
    t = _torrent(tmp_path, sample, ot)
    with shoal_seed(t.path, sample.path, tmp_path / "shoal") as sh:
        sh.port()  # checked and seeding (announced right after checking)
        wait_seed_registered(ot, t.info_hash)
        leecher = make_lt()
        hl = leecher.add(t.path, tmp_path / "dl")
        leecher.wait_complete(hl, timeout=90)
        st = sh.wait_stats(lambda s: int(s["uploaded"]) >= t.total_size, 20, "shoal's upload count")  # type: ignore[call-overload]
    assert int(st["uploaded"]) >= t.total_size  # type: ignore[call-overload]
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


def test_libtorrent_first_connection_is_an_mse_handshake_shoal_answers(
    tmp_path: Path, sample: content.Content, make_lt: Callable[..., LtSession]
) -> None:
    """libtorrent's default ``out_enc_policy`` opens with an MSE handshake; `shoal seed` answers it (plaintext
    stream), so the download runs on that first connection instead of a plaintext retry a reconnect delay later."""
    import time

    t = content.make_torrent(sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE)
    with shoal_seed(t.path, sample.path, tmp_path / "shoal") as sh:
        port = sh.port()
        leecher = make_lt()
        lt = leecher.lt
        hl = leecher.add(t.path, tmp_path / "dl", peers=[("127.0.0.1", port)])
        hl.set_download_limit(200_000)  # keep the connection up until we have looked at it
        flags = 0
        deadline = time.monotonic() + 60
        while not flags & lt.peer_info.plaintext_encrypted and time.monotonic() < deadline:
            for p in hl.get_peer_info():
                flags |= int(p.flags)
            leecher.pump(0.02)
        hl.set_download_limit(0)
        leecher.wait_complete(hl, timeout=60)
    assert flags & lt.peer_info.plaintext_encrypted, hex(flags)
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


def test_shoal_get_udp_tracker(
    tmp_path: Path,
    sample: content.Content,
    make_tracker: Callable[..., OpenTracker],
    make_lt: Callable[..., LtSession],
) -> None:
    """Acceptance 6 (UDP half): the torrent names only a UDP tracker; libtorrent seeds."""
    ot = make_tracker()
    t = _torrent(tmp_path, sample, ot, udp=True)
    seeder = make_lt()
    hs = seeder.add(t.path, sample.parent, seed=True)
    seeder.wait_announced(hs, timeout=15)
    with shoal_get(t.path, tmp_path / "dl", tmp_path / "shoal", "--no-seed", "--timeout", "90") as sh:
        assert sh.wait_exit(timeout=120) == 0, sh.log()
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


def test_shoal_get_magnet_from_libtorrent(
    tmp_path: Path,
    sample: content.Content,
    make_tracker: Callable[..., OpenTracker],
    make_lt: Callable[..., LtSession],
) -> None:
    """`shoal get MAGNET` (tracker in tr=): metadata over ut_metadata from libtorrent, then the download."""
    from urllib.parse import quote

    ot = make_tracker()
    t = _torrent(tmp_path, sample, ot)
    seeder = make_lt()
    hs = seeder.add(t.path, sample.parent, seed=True)
    seeder.wait_announced(hs, timeout=15)
    uri = f"magnet:?xt=urn:btih:{t.info_hash}&dn={sample.name}&tr={quote(ot.announce_url, safe='')}"
    with ShoalProc(
        [
            "get",
            uri,
            "-o",
            str(tmp_path / "dl"),
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--no-seed",
            "--timeout",
            "90",
        ],
        tmp_path / "shoal",
    ) as sh:
        assert sh.wait_exit(timeout=120) == 0, sh.log()
    content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)


async def test_announce_bytes_that_url_libraries_unquote(make_tracker: Callable[..., OpenTracker]) -> None:
    """Regression: an info-hash or peer id holding 0x24 ("$", ~7% of random info-hashes) got 400 from opentracker
    because the percent-encoded URL was re-quoted by yarl (%24 -> "$")."""
    from shoal.config import Settings
    from shoal.tracker.client import TrackerClient
    from shoal.tracker.proto.messages import AnnounceRequest, Event

    info_hash = bytes([0x24]) * 20
    ot = make_tracker(info_hashes=[info_hash.hex()])
    async with TrackerClient(Settings()) as client:
        for peer_id in (b"-SH0100-$$$$$$$$$$$$", b"-SH0100-%24&=+ /?#\x00\xff"):
            req = AnnounceRequest(
                info_hash=info_hash, peer_id=peer_id, port=6881, left=0, event=Event.STARTED
            )
            resp = await client.announce(ot.announce_url, req)
            assert resp.complete is not None and resp.complete >= 1
