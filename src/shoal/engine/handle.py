"""What users hold: :class:`AddTorrentParams` in, a :class:`Torrent` handle and :class:`TorrentStatus` out."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Collection, Sequence
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal.records import record
from shoal.types import PeerAddr

if TYPE_CHECKING:
    from shoal.engine.torrent import TorrentTask


class TorrentState(enum.Enum):
    CHECKING = "checking"
    DOWNLOADING_METADATA = "downloading metadata"
    DOWNLOADING = "downloading"
    SEEDING = "seeding"
    FINISHED = "finished"  # every wanted piece verified, not uploading
    PAUSED = "paused"
    ERROR = "error"
    STOPPED = "stopped"


@record(frozen=False)
class AddTorrentParams:
    """How to add a torrent. ``source`` is a path, ``.torrent`` bytes, a ``Metainfo``, a magnet URI or a URL."""

    source: Any
    save_path: Path = field(default_factory=Path.cwd)
    file_priorities: Sequence[int] | None = None  # one per file; 0: not downloaded, the file never created
    paused: bool = False
    seed: bool = True  # keep uploading after completion
    seed_ratio: float | None = None  # stop seeding at this upload/download ratio
    download_limit: int = 0  # bytes/s, 0 = unlimited
    upload_limit: int = 0
    peers: Sequence[PeerAddr] = ()  # initial peers to connect to, besides the trackers
    trackers: Sequence[str] = ()  # extra tracker URLs (each its own tier)
    use_trackers: bool = True
    resume: bool = True  # keep resume data in SQLite next to the data (save_path/.shoal)
    check: bool = True  # hash existing data not vouched for by resume data
    data_name: str | None = None  # use this name for the torrent's top file/folder instead of its own name
    force_recheck: bool = False  # hash everything on disk, ignoring resume data (shoal seed / shoal check)
    # pieces the caller has just verified itself (``shoal seed`` hashes in forked processes before its session
    # starts): trusted as they are, nothing is hashed; None: check as the fields above say
    verified_pieces: Collection[int] | None = None


@record
class TorrentStatus:
    info_hash: bytes
    name: str
    state: TorrentState
    progress: float  # 0..1 over wanted bytes
    total_wanted: int
    total_done: int
    download_rate: float  # payload bytes/s
    upload_rate: float
    downloaded: int  # payload bytes downloaded this run
    uploaded: int
    peers: int
    seeds: int
    pieces_have: int
    pieces_total: int
    eta: float | None  # seconds, None when unknown
    error: str | None

    @property
    def is_complete(self) -> bool:
        return self.total_wanted > 0 and self.total_done >= self.total_wanted


class Torrent:
    """A handle on one torrent in a :class:`~shoal.engine.session.Session`."""

    def __init__(self, task: TorrentTask) -> None:
        self._task = task

    def __repr__(self) -> str:
        return f"<Torrent {self.info_hash.hex()} {self.name!r}>"

    @property
    def info_hash(self) -> bytes:
        return self._task.info_hash

    @property
    def name(self) -> str:
        return self._task.name

    @property
    def save_path(self) -> Path:
        return self._task.save_path

    def status(self) -> TorrentStatus:
        return self._task.status()

    def pause(self) -> None:
        self._task.pause()

    def resume(self) -> None:
        self._task.resume()

    def set_file_priorities(self, priorities: Sequence[int]) -> None:
        """One priority per file: 0 skips the file (it is never created; what it shares of a piece with a wanted
        file waits in a part file under ``save_path/.shoal.parts``), 1..7 download it (higher first). A file
        skipped and then wanted gets its part file's bytes and downloads the rest; a finished torrent dials the
        seeds it had left again. Raises :class:`~shoal.errors.ConfigError` when the count does not match."""
        self._task.set_file_priorities(priorities)

    def set_rate_limits(self, download: int | None = None, upload: int | None = None) -> None:
        """Bytes per second; 0 is unlimited; None leaves a limit unchanged."""
        self._task.set_rate_limits(download, upload)

    def add_peer(self, addr: PeerAddr | tuple[str, int]) -> None:
        self._task.add_peers([PeerAddr(*addr)], source="user")

    async def wait_complete(self, timeout: float | None = None) -> TorrentStatus:
        """Wait until every wanted piece is verified; raises TimeoutError, or the torrent's error."""
        async with asyncio.timeout(timeout):
            await self._task.wait_complete()
        return self.status()

    async def wait_metadata(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._task.wait_metadata()

    @property
    def stats(self) -> dict[str, int]:
        """Counters for tests and benchmarks: pieces downloaded/verified/failed, peers banned, bytes."""
        return dict(self._task.counters)
