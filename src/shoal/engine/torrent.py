"""TorrentTask: one torrent's peers, picker, choker, storage, trackers and resume data, on the event loop.

Theory of operation
-------------------
A task starts either with metadata (from a .torrent) or without (a magnet: peers are asked for it over
ut_metadata, see :mod:`shoal.engine.magnet`). With metadata it builds the layout, storage and picker, then checks
what is already on disk (resume data when it matches the files, else a re-hash off the loop) and goes to
DOWNLOADING or SEEDING.

Peers come from trackers, the user and incoming connections. Each is a :class:`~shoal.engine.peer.PeerTask`, which
turns wire events into calls here (``on_*``). Requests are refilled per peer whenever something changes (unchoke,
block arrived, have), keeping each peer's pipeline at its adaptive depth. A once-a-second tick drives the choker,
request time-outs, new outgoing connections, rate estimates, resume checkpoints and completion; the session runs the
ticks of all its torrents from one timer.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Coroutine, Hashable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal.engine import alerts as al
from shoal.engine import file_selection
from shoal.engine.checking import ResumeCheckpoints, check_existing, save_resume
from shoal.engine.handle import AddTorrentParams, TorrentState, TorrentStatus
from shoal.engine.lazy_event import LazyEvent
from shoal.engine.peers import PeerSet
from shoal.engine.sources import ResolvedSource
from shoal.engine.transfer import Transfer
from shoal.errors import MetainfoError, ShoalError
from shoal.policy.bitfield import Bitfield
from shoal.storage.layout import Layout
from shoal.types import PeerAddr

if TYPE_CHECKING:
    from shoal.codec.metainfo import InfoDict
    from shoal.engine.session import Session

logger = logging.getLogger(__name__)

RESUME_DIR = ".shoal"


class TorrentTask:
    # slots, not a __dict__ (issue 7 case 6: ~1 KiB less per torrent); __weakref__ for weak maps of torrents
    __slots__ = (
        "__weakref__",
        "_announce",
        "_complete",
        "_file_priorities",
        "_metadata",
        "_metadata_server",
        "_parts_moving",
        "_paused_peers",
        "_stopped",
        "_tasks",
        "checkpoints",
        "counters",
        "done_total",
        "error",
        "have",
        "info",
        "info_hash",
        "info_hashes",
        "layout",
        "magnet",
        "name",
        "params",
        "paused",
        "peers",
        "rates",
        "resume_store",
        "retry_epoch",
        "save_path",
        "session",
        "settings",
        "source",
        "started_at",
        "state",
        "transfer",
        "wanted_total",
    )

    def __init__(self, session: Session, source: ResolvedSource, params: AddTorrentParams) -> None:
        self.session = session
        self.settings = session.settings
        self.source = source
        self.params = params
        self.info_hash = source.info_hash
        self.info_hashes = [source.info_hash]
        if source.info_hash_v2 is not None and source.info_hash_v2[:20] != source.info_hash:
            self.info_hashes.append(source.info_hash_v2[:20])
        self.name = source.name
        self.save_path = Path(params.save_path)
        self.info: InfoDict | None = None
        self.layout: Layout | None = None
        self.transfer: Transfer | None = None
        self.have: Bitfield | None = None
        self.state = TorrentState.DOWNLOADING_METADATA if source.metainfo is None else TorrentState.CHECKING
        self.error: str | None = None
        self.retry_epoch = 0  # bumped by resume() out of the error state
        self.paused = params.paused
        self.counters: collections.Counter[str] = collections.Counter()
        self.peers = PeerSet(self)
        self._complete = LazyEvent()
        self._metadata = LazyEvent()
        self._stopped = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._file_priorities: list[int] | None = (
            list(params.file_priorities) if params.file_priorities else None
        )
        self.resume_store: Any = None
        self.checkpoints = ResumeCheckpoints(self)
        self.started_at = time.monotonic()
        self.wanted_total = 0
        self.done_total = 0
        self._announce: Any = None
        self.magnet: Any = None
        self._metadata_server: Any = None
        self._paused_peers: list[PeerAddr] = []
        self._parts_moving: asyncio.Task[Any] | None = None  # the storage's last file-priority change

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        from shoal.engine.rates import RateSet

        self.rates = RateSet(self.session, self.params.download_limit, self.params.upload_limit)
        if self.source.metainfo is not None:
            self.spawn(self._setup_and_run(self.source.metainfo.info))
        else:
            from shoal.engine.magnet import MetadataTask

            self.magnet = MetadataTask(self)
            self._start_ticking()
            self._start_trackers()  # with metadata, trackers start once checking says what we have
        if self.source.magnet_peers:
            self.add_peers([PeerAddr(*p) for p in self.source.magnet_peers], source="magnet")
        if self.params.peers:
            self.add_peers(self.params.peers, source="user")

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            logger.error("torrent %s: task failed: %r", self.name, exc, exc_info=exc)
            self.fail(exc)  # type: ignore[arg-type]

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.session.stop_ticking(self)
        self.peers.close_all("shutting down")
        if self._announce is not None:
            await self._announce.stop(timeout=self.settings.tracker_timeout / 3)
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        if self.transfer is not None:
            await self.transfer.close()
            if self.resume_store is not None and self.have is not None:
                try:
                    await save_resume(self)
                except ShoalError as exc:
                    logger.warning("torrent %s: cannot save resume data: %s", self.name, exc)
            await self.transfer.storage.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        self.state = TorrentState.STOPPED

    @property
    def stopping(self) -> bool:
        return self._stopped

    def fail(self, exc: BaseException) -> None:
        msg = str(exc) if isinstance(exc, ShoalError) else f"{type(exc).__name__}: {exc}"
        if self.error is None:
            self.error = msg
            self.session.post(al.TorrentError(self.info_hash, msg))
        if self.state is not TorrentState.ERROR:
            self._paused_peers = self.peers.reachable_addresses()
        self._set_state(TorrentState.ERROR)
        self.peers.close_all("torrent error")
        self._complete.set()  # wake waiters; wait_complete raises

    def _set_state(self, new: TorrentState) -> None:
        if new is not self.state:
            old, self.state = self.state, new
            self.session.post(al.StateChanged(self.info_hash, old.value, new.value))

    # --- metadata, storage, checking ------------------------------------------------------------------------

    async def _setup_and_run(self, info: InfoDict) -> None:
        await self.setup(info)
        self._start_ticking()

    def _make_layout(self, info: InfoDict) -> Layout:
        return Layout.for_torrent(info, self.params.data_name)

    async def setup(self, info: InfoDict) -> None:
        """Metadata is known: build layout, storage, picker; check existing data; start downloading or seeding."""
        if not info.has_v1:
            raise MetainfoError("v2-only torrents are not supported yet (hybrid and v1 are)")
        self.info = info
        self.name = info.name
        self.layout = layout = self._make_layout(info)
        self._metadata.set()
        prios = self._file_priorities = file_selection.resolve(
            self._file_priorities, layout, self.source.magnet
        )
        storage = self._make_storage(layout)
        if prios is not None:  # before open and check: unwanted files are not created, part files are read
            await storage.set_file_priorities(prios)
        await storage.open()
        while self._file_priorities is not prios:  # set again meanwhile, checked then (``shoal get --files``)
            prios = self._file_priorities
            assert prios is not None
            await storage.set_file_priorities(prios)
        self.transfer = transfer = Transfer.for_torrent(self, layout, storage, info.piece_hash_v1)
        picker = transfer.picker
        self.have = Bitfield(layout.num_pieces)
        if prios is not None:
            file_selection.apply(transfer, layout, prios)
        self._set_state(TorrentState.CHECKING)
        async with self.session.checking_slots:
            have = await check_existing(self, storage, layout, force=self.params.force_recheck)
        for i in have:
            picker.set_have(i)
            self.have.add(i)
        self.session.post(al.CheckingFinished(self.info_hash, self.have.count, layout.num_pieces))
        self._recount()
        self._after_progress()
        if not self.paused and self.state is not TorrentState.ERROR:
            self._set_state(TorrentState.SEEDING if self.is_finished else TorrentState.DOWNLOADING)
        elif self.paused:
            self._set_state(TorrentState.PAUSED)
        self.peers.on_metadata()
        if self._announce is None:
            self._start_trackers()

    def _make_storage(self, layout: Layout) -> Any:
        factory = self.session.storage_factory
        if factory is not None:
            return factory(layout, self.save_path)
        from shoal.storage.files import FileStorage

        return FileStorage(
            layout,
            self.save_path,
            disk_threads=self.settings.disk_threads,
            write_chunk=self.settings.disk_write_chunk,
            write_behind=self.settings.disk_write_behind,
            direct_writes=self.settings.disk_direct_writes,
            preallocate=self.settings.disk_preallocate,
        )

    def conn_geometry(self, with_metadata_size: bool = True) -> dict[str, Any]:
        """Keyword arguments for PeerConnection / accept / set_num_pieces, once the metadata is known."""
        if self.info is None:
            return {}
        out: dict[str, Any] = {
            "num_pieces": self.info.num_pieces,
            "piece_length": self.info.piece_length,
            "total_length": self.info.total_length,
        }
        if with_metadata_size:
            out["metadata_size"] = len(self.info.raw)
        return out

    def metadata_piece(self, piece: int) -> Any:
        """Answer a ut_metadata request (data or reject)."""
        from shoal.wire.metadata import MetadataReject, MetadataServer

        if self.info is None:
            return MetadataReject(piece)
        if self._metadata_server is None:
            self._metadata_server = MetadataServer(self.info.raw)
        return self._metadata_server.respond(piece)

    def file_count(self) -> int:
        return 0 if self.info is None else len(self.info.files)

    def set_file_priorities(self, priorities: Sequence[int]) -> None:
        """Priority 0: not downloaded (:mod:`shoal.engine.file_selection`). Before the metadata is known the
        priorities wait for it."""
        if self.layout is not None:
            file_selection.check(priorities, self.layout)
        prios = self._file_priorities = list(priorities)
        if self.transfer is None or self.layout is None:
            return
        file_selection.apply(self.transfer, self.layout, prios)
        self._parts_moving = self.spawn(
            file_selection.move_parts(self.transfer.storage, self._parts_moving, prios)
        )
        self._recount()
        self._after_progress()
        self.peers.refresh_interest()

    def _recount(self) -> None:
        """Recompute wanted/done byte totals (priorities changed or checking finished)."""
        assert self.layout is not None and self.transfer is not None
        self.wanted_total, self.done_total = file_selection.wanted_bytes(self.transfer.picker, self.layout)

    # --- pieces ----------------------------------------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        return self.transfer is not None and self.transfer.picker.is_finished

    def on_pieces_passed(self, indices: list[int]) -> None:
        """Pieces verified and written (those of one collection of finished writes): had, announced to every
        peer in one write each, progress updated once."""
        assert self.have is not None and self.layout is not None and self.transfer is not None
        have = self.have
        priority = self.transfer.picker.priority
        piece_size = self.layout.piece_size
        post = self.session.post
        info_hash = self.info_hash
        for index in indices:
            have.add(index)
            if priority(index) > 0:
                self.done_total += piece_size(index)
            post(al.PieceFinished(info_hash, index))
        self.counters["pieces_downloaded"] += len(indices)
        self.checkpoints.pieces_verified(indices)
        self.peers.broadcast_have(indices)
        self._after_progress()

    def on_piece_failed(self, index: int, senders: set[Hashable], guilty: set[Hashable]) -> None:
        """A piece failed its hash: strike every IP that sent part of it; ban the proven or repeat offenders."""
        from shoal.engine.dialing import ban_key

        self.counters["hash_failures"] += 1
        self.session.post(al.HashFailed(self.info_hash, index, tuple(sorted(str(s) for s in senders))))
        book = self.peers.book
        for addr in senders:
            key = ban_key(addr) if isinstance(addr, PeerAddr) else str(addr)
            if addr in guilty:
                self.ban_address(addr, "sent corrupt data (only contributor of a failed piece)")
            elif book.on_hash_failure(key):
                self.peers.ban(addr, f"{book.max_hash_failures} pieces failed their hash")

    def ban_address(self, addr: Hashable, reason: str) -> None:
        self.peers.ban(addr, reason)

    def _after_progress(self) -> None:
        if self.transfer is None:
            return
        if self.is_finished and not self._complete.is_set():
            self.checkpoints.checkpoint(force=True)
            self._complete.set()
            self.session.post(al.TorrentFinished(self.info_hash, self.counters["bytes_downloaded"]))
            if self._announce is not None:
                self._announce.completed()
            if self.state is TorrentState.DOWNLOADING:
                self._set_state(TorrentState.SEEDING if self.params.seed else TorrentState.FINISHED)
            self.peers.on_finished()
        elif not self.is_finished and self._complete.is_set() and self.state is not TorrentState.ERROR:
            self._complete.clear()  # new files were selected
            if self.state in (TorrentState.SEEDING, TorrentState.FINISHED):
                self._set_state(TorrentState.DOWNLOADING)
            self.peers.redial_seeds_left()

    def resume_reading_if_idle(self) -> None:
        if self.transfer is not None and self.transfer.write_backlog_drained:
            self.peers.resume_reading()

    # --- trackers ---------------------------------------------------------------------------------------------

    def _start_trackers(self) -> None:
        if self.session.discovery is not None:  # DHT and LSD (shoal.engine.discovery); skips private torrents
            self.session.discovery.start_torrent(self)
        if not self.params.use_trackers:
            return
        tiers = [list(t) for t in self.source.trackers] + [[t] for t in self.params.trackers]
        if not tiers:
            return
        from shoal.engine.announce import TorrentAnnouncer

        self._announce = TorrentAnnouncer(self, tiers)
        self.spawn(self._announce.run())

    def announce_counters(self) -> tuple[int, int, int]:
        """(uploaded, downloaded, left) for announces."""
        left = max(0, self.wanted_total - self.done_total) if self.transfer is not None else 1
        return self.counters["bytes_uploaded"], self.counters["bytes_downloaded"], left

    # --- peers ------------------------------------------------------------------------------------------------

    def add_peers(self, addrs: Iterable[PeerAddr], source: str) -> None:
        self.peers.add_candidates(addrs, source)

    async def wait_complete(self) -> None:
        await self._complete.wait()
        if self.error is not None:
            raise ShoalError(self.error)

    async def wait_metadata(self) -> None:
        await self._metadata.wait()

    def pause(self) -> None:
        if self.paused:
            return
        self.paused = True
        self._paused_peers = self.peers.reachable_addresses()
        self.peers.close_all("paused")
        self.checkpoints.checkpoint(force=True)
        self._set_state(TorrentState.PAUSED)

    def resume(self) -> None:
        """Resume a paused torrent, or retry one in the error state (e.g. after disk space was freed): verified
        pieces are kept; a piece whose write failed is downloaded again."""
        if self.state is TorrentState.ERROR and self.error is not None and not self._stopped:
            self.error = None
            self.retry_epoch += 1  # writes still in flight from before fail their piece, not the torrent
            if not self.is_finished:
                self._complete.clear()
            self.paused = True  # fall through to a normal resume
        if not self.paused:
            return
        self.paused = False
        if self.transfer is None:
            self._set_state(TorrentState.DOWNLOADING_METADATA)
        else:
            self._set_state(TorrentState.SEEDING if self.is_finished else TorrentState.DOWNLOADING)
        if self._announce is not None:
            self._announce.want_peers()
        self.peers.redial(self._paused_peers)  # the peers we had, at once (no reconnect back-off)
        self._paused_peers = []

    def set_rate_limits(self, download: int | None, upload: int | None) -> None:
        self.rates.set_limits(download, upload)

    # --- the tick ---------------------------------------------------------------------------------------------

    def _start_ticking(self) -> None:
        """Tick now, then with every other torrent of the session (one timer for all of them, not a task each)."""
        if not self._stopped:
            self.run_tick()
            self.session.start_ticking(self)

    def run_tick(self) -> None:
        """One tick; an error puts this torrent (only) in the error state."""
        if self._stopped:
            return
        try:
            self.tick()
        except ShoalError as exc:
            self.fail(exc)
        except Exception as exc:  # a bug: this torrent fails, the session's other torrents keep ticking
            logger.error("torrent %s: tick failed: %r", self.name, exc, exc_info=exc)
            self.fail(exc)

    def tick(self) -> None:
        if self.state in (TorrentState.ERROR, TorrentState.STOPPED):
            return
        now = self.session.clock.now()
        self.rates.tick(now)
        if not self.paused:
            self.peers.tick(now)
        self.checkpoints.checkpoint()
        if self.magnet is not None and self.transfer is None:
            self.magnet.tick(now)
        ratio = self.params.seed_ratio
        if (
            self.state is TorrentState.SEEDING
            and ratio is not None
            and self.counters["bytes_uploaded"] >= ratio * max(1, self.wanted_total)
        ):
            self._set_state(TorrentState.FINISHED)
            self.peers.on_finished()

    # --- status -----------------------------------------------------------------------------------------------

    def status(self) -> TorrentStatus:
        down = self.rates.down_rate()
        up = self.rates.up_rate()
        left = self.wanted_total - self.done_total
        eta = None
        if self.transfer is not None and left <= 0:
            eta = 0.0
        elif down > 0:
            eta = left / down
        progress = (
            self.done_total / self.wanted_total if self.wanted_total else (1.0 if self.is_finished else 0.0)
        )
        return TorrentStatus(
            info_hash=self.info_hash,
            name=self.name,
            state=self.state,
            progress=progress,
            total_wanted=self.wanted_total,
            total_done=self.done_total,
            download_rate=down,
            upload_rate=up,
            downloaded=self.counters["bytes_downloaded"],
            uploaded=self.counters["bytes_uploaded"],
            peers=self.peers.count(),
            seeds=self.peers.seed_count(),
            pieces_have=0 if self.have is None else self.have.count,
            pieces_total=0 if self.layout is None else self.layout.num_pieces,
            eta=eta,
            error=self.error,
        )
