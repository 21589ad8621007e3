"""Acceptance 4 (issue 3): kill -9 a `shoal get` half-way, start the same command again.

The second run must not download again any piece the first run had verified (counted: pieces found from resume
data or by re-hashing, versus pieces downloaded), must never trust unverified data, and must end byte-identical.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm_helpers import ShoalProc, make_file, make_torrent, same_tree, shoal_get, shoal_seed

PIECE = 64 * 1024
NUM_PIECES = 160  # 10 MiB


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kill_at", [0.5])
def test_kill9_half_way_then_resume(tmp_path: Path, kill_at: float) -> None:
    src = make_file(tmp_path / "src" / "big.bin", NUM_PIECES * PIECE - 777)
    torrent = tmp_path / "big.torrent"
    torrent.write_bytes(make_torrent(src, piece_length=PIECE))
    out = tmp_path / "dl"
    with shoal_seed(torrent, src, tmp_path / "seed") as seeder:
        port = seeder.port()
        peer = f"127.0.0.1:{port}"
        first: ShoalProc
        with shoal_get(
            torrent, out, tmp_path / "run1", "--no-seed", "--peer", peer, "--download-limit", "1000000"
        ) as first:
            st = first.wait_stats(
                lambda s: int(s["pieces_have"]) >= NUM_PIECES * kill_at,  # type: ignore[call-overload]
                90,
                "half of the pieces",
            )
            first.kill9()
            verified_before_kill = int(st["pieces_have"])  # type: ignore[call-overload]
        assert first.proc.returncode == -9
        assert 0 < verified_before_kill < NUM_PIECES

        with shoal_get(
            torrent, out, tmp_path / "run2", "--no-seed", "--peer", peer, "--timeout", "90"
        ) as second:
            assert second.wait_exit(timeout=120) == 0, second.log()
            final = second.stats()
    counters = final["counters"]
    assert isinstance(counters, dict)
    kept = int(counters.get("pieces_from_resume", 0)) + int(counters.get("pieces_from_recheck", 0))
    downloaded_again = int(counters.get("pieces_downloaded", 0))
    # Every piece verified before the kill was found again on disk, not downloaded again ...
    assert kept >= verified_before_kill, counters
    # ... and only the rest was downloaded (each piece exactly once).
    assert kept + downloaded_again == NUM_PIECES, counters
    assert same_tree(src, out / "big.bin")
