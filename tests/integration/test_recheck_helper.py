"""A session re-checks big torrents in a helper process (storage/check_helper.py): the pieces it finds are the
threaded re-check's, and a helper that fails leaves the answer to the threads."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from shoal.config import Settings
from shoal.engine.session import Session
from shoal.storage import check_helper
from swarm_helpers import make_payload, make_torrent

pytestmark = pytest.mark.timeout(60)
PL = 64 * 1024


async def _checked(tmp_path: Path, settings: Settings) -> tuple[int, int, int]:
    """(pieces had, pieces in all, re-checks done in a helper) after a forced re-check with piece 3 damaged."""
    src = make_payload(tmp_path / "data" / "t", [("a.bin", 40 * PL + 123), ("b.bin", 3 * PL)], seed=7)
    data = make_torrent(src, piece_length=PL)
    a = src / "a.bin"
    raw = bytearray(a.read_bytes())
    raw[3 * PL + 9] ^= 0xFF
    a.write_bytes(bytes(raw))
    async with Session(settings, listen=None) as session:
        h = await session.add(data, save_path=src.parent, force_recheck=True, use_trackers=False, seed=True)
        for _ in range(1000):
            st = h.status()
            if st.state.value not in ("checking", "queued"):
                break
            await asyncio.sleep(0.01)
        return st.pieces_have, st.pieces_total, int(h.stats.get("rechecks_in_helper", 0))


@pytest.fixture
def small_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check_helper, "HELPER_MIN_BYTES", 0)
    monkeypatch.setattr(check_helper, "_CORES", 2)


@pytest.mark.usefixtures("small_is_enough")
async def test_a_forced_recheck_runs_in_the_helper(tmp_path: Path) -> None:
    have, total, helped = await _checked(tmp_path, Settings())
    assert (have, helped) == (total - 1, 1)


@pytest.mark.usefixtures("small_is_enough")
async def test_the_setting_keeps_it_in_threads(tmp_path: Path) -> None:
    have, total, helped = await _checked(tmp_path, Settings(recheck_in_helper=False))
    assert (have, helped) == (total - 1, 0)


@pytest.mark.usefixtures("small_is_enough")
async def test_a_failing_helper_leaves_it_to_the_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        check_helper, "helper_command", lambda parent: [sys.executable, "-c", "raise SystemExit(3)"]
    )
    have, total, helped = await _checked(tmp_path, Settings())
    assert (have, helped) == (total - 1, 0)
