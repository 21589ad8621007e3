"""``Session.add(path)`` with a path that is not a sane .torrent file: ``/dev/zero``, a FIFO nobody writes to, a
folder, a 64 GiB sparse file, a file one byte over ``max_torrent_size``. Each is one ``ShoalError`` at once, having
read at most ``max_torrent_size`` + 1 bytes; nothing is added and the session keeps working.
"""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from pathlib import Path

import pytest

from shoal.config import Settings
from shoal.engine.session import Session
from shoal.engine.sources import read_torrent_file, read_torrent_file_nowait
from shoal.errors import ConfigError, MetainfoError, ShoalError
from torrent_factory import build, content

pytestmark = pytest.mark.timeout(60)

LIMIT = 1024 * 1024
TORRENT = build({(): content(20000)}, "v1", name="one")


def _hostile_path(tmp_path: Path, kind: str) -> Path:
    if kind == "dev-zero":
        return Path("/dev/zero")
    path = tmp_path / f"{kind}.torrent"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "sparse-64g":
        with open(path, "wb") as f:
            f.truncate(64 << 30)
    elif kind == "one-past":
        path.write_bytes(TORRENT + b"x" * (LIMIT + 1 - len(TORRENT)))
    return path


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("dev-zero", ConfigError),
        ("fifo", ConfigError),
        ("folder", ConfigError),
        ("sparse-64g", MetainfoError),
        ("one-past", MetainfoError),
    ],
)
async def test_add_refuses_a_path_that_is_not_a_small_regular_file(
    tmp_path: Path, kind: str, error: type[ShoalError]
) -> None:
    if kind == "dev-zero" and not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    path = _hostile_path(tmp_path, kind)
    settings = Settings(max_torrent_size=LIMIT)
    async with Session(settings, listen=("127.0.0.1", 0)) as session:
        tracemalloc.start()
        try:
            with pytest.raises(error) as caught:
                await asyncio.wait_for(session.add(path, save_path=tmp_path / "out"), 10)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        message = str(caught.value)
        assert "\n" not in message
        assert "not a regular file" in message or "max_torrent_size" in message
        assert peak < 4 * LIMIT, peak  # never the whole file, only up to the limit (+ bookkeeping)
        assert session.torrents() == []
        ok = await session.add(TORRENT, save_path=tmp_path / "out")  # the session still works
        assert ok.name == "one"


def test_a_torrent_exactly_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "at-limit.torrent"
    path.write_bytes(TORRENT)
    assert read_torrent_file(path, len(TORRENT)) == TORRENT
    with pytest.raises(MetainfoError, match="max_torrent_size"):
        read_torrent_file(path, len(TORRENT) - 1)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read torrent file"):
        read_torrent_file(tmp_path / "missing.torrent", LIMIT)


def test_a_file_whose_size_lies_is_read_only_up_to_the_limit() -> None:
    """/proc files report size 0 and can be long: the read stops at ``limit`` + 1 bytes."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc")
    assert maps.stat().st_size == 0
    with pytest.raises(MetainfoError, match="more than 100 bytes exceeds max_torrent_size 100"):
        read_torrent_file(maps, 100)


def test_the_page_cache_read_is_the_same_bounded_read(tmp_path: Path) -> None:
    """Session.add first tries the file from the page cache on the event loop (no worker-thread round trip)."""
    path = tmp_path / "t.torrent"
    path.write_bytes(TORRENT)
    got = read_torrent_file_nowait(path, LIMIT)
    assert got is None or got == TORRENT  # None: the file system cannot say (the worker thread reads it)
    with pytest.raises(MetainfoError, match="max_torrent_size"):
        read_torrent_file_nowait(path, len(TORRENT) - 1)
    for bad in ("/dev/zero", str(tmp_path)):
        if Path(bad).exists():
            with pytest.raises(ConfigError, match="not a regular file"):
                read_torrent_file_nowait(Path(bad), LIMIT)
