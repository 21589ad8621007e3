"""Helpers for end-to-end fault tests through the engine: small file systems, in-process seeders, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from peers import require_binary, require_root
from shoal.codec.metainfo import Metainfo
from shoal.config import Settings
from shoal.engine.handle import Torrent, TorrentStatus
from shoal.engine.session import Session
from shoal.types import PeerAddr

# Fast retries so a fault test sees a recovery within seconds instead of the production back-offs.
FAST = Settings(
    tracker_timeout=1.0,
    tracker_retry_base=0.5,
    tracker_retry_max=2.0,
    tracker_min_interval=1.0,
    peer_connect_backoff=0.5,
    peer_connect_backoff_max=2.0,
    peer_connect_timeout=2.0,
    engine_tick_interval=0.1,
)


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *options: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``path`` for the test (needs root); always unmounted."""
    require_root("mounting a tmpfs")
    mount = require_binary("mount")
    umount = require_binary("umount")
    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join([f"size={size}", *options])
    subprocess.run([mount, "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True, timeout=30)
    try:
        yield path
    finally:
        subprocess.run([umount, "-l", str(path)], check=False, timeout=30)


def remount(path: Path, *options: str) -> None:
    subprocess.run(
        [require_binary("mount"), "-o", ",".join(["remount", *options]), str(path)], check=True, timeout=30
    )


async def wait_status(
    torrent: Torrent, pred: Callable[[TorrentStatus], bool], timeout: float, what: str
) -> TorrentStatus:
    """Poll ``torrent.status()`` until ``pred`` holds; fail with the last status after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        st = torrent.status()
        if pred(st):
            return st
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {st}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def seeder(
    torrent: Path, data: Path, settings: Settings = FAST, port: int = 0
) -> AsyncIterator[tuple[Session, Torrent, PeerAddr]]:
    """An in-process Shoal seeder for ``data`` (the torrent's file or folder) on loopback."""
    async with Session(settings, listen=("127.0.0.1", port)) as session:
        handle = await session.add(
            torrent, save_path=data.parent, data_name=data.name, force_recheck=True, seed=True
        )
        await wait_status(handle, lambda s: s.state.value in ("seeding", "error"), 60, "the seeder to check")
        yield session, handle, PeerAddr("127.0.0.1", session.listen_port)


def bad_pieces(save_path: Path, meta: Metainfo, pieces: set[int] | None = None) -> list[int]:
    """Pieces (all, or ``pieces``) whose bytes under ``save_path`` do not hash to the torrent's hash."""
    info = meta.info
    stream = bytearray()
    for f in info.files:
        p = save_path.joinpath(*f.path)
        data = p.read_bytes()[: f.length] if p.exists() else b""
        stream += data + bytes(f.length - len(data))
    todo = range(info.num_pieces) if pieces is None else sorted(pieces)
    pl = info.piece_length
    return [
        i
        for i in todo
        if hashlib.sha1(bytes(stream[i * pl : (i + 1) * pl])).digest() != info.piece_hash_v1(i)
    ]
