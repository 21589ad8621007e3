"""Moving piece data for one torrent: blocks in (assembly, hash + write off the loop, smart ban) and out (serving).

:class:`Transfer` is owned by a :class:`~shoal.engine.torrent.TorrentTask` once the metadata is known. It holds the
picker, the storage and the in-memory piece buffers. Peers are :class:`~shoal.engine.peer.PeerTask` objects and are
the picker's peer keys.

Download: ``on_blocks`` copies each block of a read into its piece buffer; when the picker reports the piece complete,
``storage.hash_and_write_piece`` hashes and writes it in one worker-thread hop. A pass marks the piece had (and
announces it); a failure resets it in the picker, records block hashes for smart ban, and strikes the peers that
sent it. Upload: requests queue on the peer; a piece a peer asks several blocks of is read whole into a small LRU
cache so one read serves all of them, while a lone block (peers asking all over the torrent) is read by itself and
never cached (counters ``pieces_read`` and ``blocks_read``). Blocks go out as views of the cached buffer, so a
buffer is never written while a view of it lives: evicted buffers wait in a short spare list and are read into
again only once nothing exports them any more (:func:`unshared`), which saves an allocation (and its page faults)
per piece served.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import mmap
from collections.abc import Callable, Coroutine, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from shoal.engine.pieces import PieceBuffer, SmartBan, block_hashes
from shoal.errors import ShoalError, StorageError
from shoal.policy.blocks import ACCEPTED
from shoal.policy.picker import PiecePicker
from shoal.storage.backend import Storage
from shoal.types import BlockRef

if TYPE_CHECKING:
    from shoal.engine.peer import PeerTask
    from shoal.engine.torrent import TorrentTask
    from shoal.storage.layout import Layout

logger = logging.getLogger(__name__)


# finished pieces of one read are handed to a disk worker as one job while they add up to at most this
WRITE_BATCH_BYTES = 256 * 1024


def write_queue_pieces(piece_length: int, budget_bytes: int, max_pieces: int) -> int:
    """How many finished pieces may wait for their hash and write before a torrent stops reading its peers.

    A byte budget, so the memory it holds does not grow with the piece size: 16 MiB is 16 pieces of 1 MiB (the
    fixed count this replaces) but 2 of 16 MiB (was 16: 256 MiB). At most ``max_pieces`` (small pieces), at least
    2 (one being written while the next one waits)."""
    return max(2, min(max_pieces, budget_bytes // max(1, piece_length)))


class Transfer:
    def __init__(
        self,
        task: TorrentTask,
        picker: PiecePicker,
        storage: Storage,
        piece_hash: Callable[[int], bytes],
        *,
        read_cache_bytes: int = 4 * 1024 * 1024,
        read_buffer_spares: int = 2,
        max_pending_writes: int = 16,
        pad_blocks: Iterable[tuple[int, int]] = (),
    ) -> None:
        self.task = task
        self.picker = picker
        self.storage = storage
        self.piece_hash = piece_hash
        self.buffers: dict[int, PieceBuffer] = {}
        self.smart_ban = SmartBan()
        self.strikes: collections.Counter[Hashable] = collections.Counter()
        self.pending_writes = 0
        self.max_pending_writes = max_pending_writes
        self._cache: collections.OrderedDict[int, bytes | bytearray] = collections.OrderedDict()
        self.piece_length = picker.piece_length
        self._cache_max = max(2, read_cache_bytes // max(1, self.piece_length))
        self.cache_bytes = self._cache_max * self.piece_length  # what the cache holds at most
        self._spare: list[bytearray] = []  # evicted full-size buffers, reused once no view of them is left
        self._max_spare = read_buffer_spares
        self._reads: dict[int, asyncio.Future[bytes | bytearray]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        self._free: dict[int, list[bytearray | mmap.mmap]] = {}  # piece length -> finished buffers to reuse
        self.max_free_buffers = max_pending_writes  # every buffer a full write queue held is kept for reuse
        self.pad_pieces = {piece for piece, _ in pad_blocks}
        # finished piece writes, appended by the worker threads, acted on by collect_writes on the loop
        self._done: collections.deque[tuple[PieceBuffer, bool | BaseException]] = collections.deque()
        self._wake_pending = False
        self._finished_writes: asyncio.Event | None = None
        self._loop = asyncio.get_running_loop()

    @classmethod
    def for_torrent(
        cls, task: TorrentTask, layout: Layout, storage: Storage, piece_hash: Callable[[int], bytes]
    ) -> Transfer:
        """A torrent's transfer over its opened ``storage``: a picker for ``layout`` (pad blocks had already) and
        the read cache and write queue its settings ask for."""
        settings = task.settings
        pads = layout.pad_blocks()
        picker = PiecePicker(
            layout.num_pieces, layout.piece_length, layout.total_length, rng=task.session.rng, pad_blocks=pads
        )
        return cls(
            task,
            picker,
            storage,
            piece_hash,
            read_cache_bytes=settings.read_cache_bytes,
            read_buffer_spares=settings.read_buffer_spares,
            max_pending_writes=write_queue_pieces(
                layout.piece_length, settings.max_pending_write_bytes, settings.max_pending_piece_writes
            ),
            pad_blocks=pads,
        )

    # --- download ------------------------------------------------------------------------------------------

    def on_blocks(self, peer: PeerTask, data: memoryview, blocks: list[tuple[int, int, int, int]]) -> int:
        """Copy each accepted block ``data[start:end]`` of ``(piece, offset, start, end)`` into its piece buffer;
        start the hash and write of every piece completed. Returns the bytes received (accepted or not)."""
        if self._done:
            self.collect_writes()
        results = self.picker.received_blocks(peer, blocks)
        accepted = ACCEPTED
        buffers = self.buffers
        total = 0
        wasted = 0
        current = -1
        target = memoryview(b"")
        finished: list[PieceBuffer] = []
        for (piece, offset, start, end), result in zip(blocks, results, strict=True):
            total += end - start
            if result is not accepted and not result.accepted:
                wasted += 1
                continue
            if piece != current:
                buf = buffers.get(piece)
                if buf is None:
                    buf = buffers[piece] = self._new_buffer(piece, self.picker.piece_size(piece))
                current = piece
                target = buf.view
            target[offset : offset + end - start] = data[start:end]
            if result is accepted:
                continue
            if result.cancel:
                block = BlockRef(piece, offset, end - start)
                for other in result.cancel:
                    other.send_cancel(block)  # type: ignore[attr-defined]
            if result.piece_complete:
                finished.append(buffers.pop(piece))
                current = -1
        if finished:
            self._write_pieces(finished)
        if wasted:
            self.task.counters["blocks_wasted"] += wasted
        return total

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _write_pieces(self, bufs: list[PieceBuffer]) -> None:
        """Hash and write complete pieces off the loop. A storage with ``submit_hash_and_write_many``
        (FileStorage) runs them on its worker threads and hands the results to :meth:`_written` there: no task
        and no loop round trip per piece, and the results are picked up at the next read (or the loop's next
        turn), not behind up to 32 reads of a busy socket as an executor future would be. Pieces finished by one
        read go as one job while they add up to at most :data:`WRITE_BATCH_BYTES` (small pieces: one hand-off to
        a worker and one wake-up of the loop for several), each bigger piece as a job of its own (so the workers
        hash them in parallel). Other storages go through the coroutine, piece by piece."""
        self.pending_writes += len(bufs)
        epoch = self.task.retry_epoch
        for buf in bufs:
            buf.epoch = epoch
        submit = getattr(self.storage, "submit_hash_and_write_many", None)
        if submit is None:
            for buf in bufs:
                self._spawn(self._write_piece_async(buf))
            return
        batch: list[PieceBuffer] = []
        size = 0
        for buf in bufs:
            if batch and size + buf.length > WRITE_BATCH_BYTES:
                self._submit(submit, batch)
                batch, size = [], 0
            batch.append(buf)
            size += buf.length
        self._submit(submit, batch)

    def _submit(self, submit: Callable[..., None], bufs: list[PieceBuffer]) -> None:
        items = [(buf.index, buf.view, self.piece_hash(buf.index)) for buf in bufs]
        try:
            submit(items, lambda results: self._written(bufs, results))
        except Exception as exc:  # the executor is shut down, ...
            self._written(bufs, [exc] * len(bufs))

    async def _write_piece_async(self, buf: PieceBuffer) -> None:
        try:
            result: bool | BaseException = await self.storage.hash_and_write_piece(
                buf.index, buf.view, self.piece_hash(buf.index)
            )
        except asyncio.CancelledError:
            self.pending_writes -= 1
            raise
        except Exception as exc:
            result = exc
        self._done.append((buf, result))
        self.collect_writes()

    def _written(self, bufs: list[PieceBuffer], results: list[bool | BaseException]) -> None:
        """(Worker thread) pieces are hashed and written: queue the results, wake the loop if nobody will look."""
        self._done.extend(zip(bufs, results, strict=True))
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._loop.call_soon_threadsafe(self.collect_writes)
            except RuntimeError:  # the loop is closed: nobody is left to care
                pass

    def collect_writes(self) -> None:
        """Act on every finished piece write (called on the loop, from the wake-up and after each read): the
        pieces that passed are announced together (:meth:`TorrentTask.on_pieces_passed`: one have message per
        piece, but one write per peer and one progress update for all)."""
        self._wake_pending = False  # before draining: a result queued after this point wakes the loop again
        done = self._done
        if done:
            passed: list[int] = []
            hashed = False
            while done:
                buf, result = done.popleft()
                self.pending_writes -= 1
                verdict = self._piece_written(buf, result)
                if verdict is not None:
                    hashed = True
                    if verdict:
                        passed.append(buf.index)
            if passed:
                self.task.on_pieces_passed(passed)
            if hashed and not self.closed:
                if self.picker.is_finished:
                    self._free.clear()  # nothing left to download: give the pooled buffers back
                self.task.resume_reading_if_idle()
        if self._finished_writes is not None and not self.pending_writes:
            self._finished_writes.set()

    def _piece_written(self, buf: PieceBuffer, result: bool | BaseException) -> bool | None:
        """One piece's result: True when it passed (the caller announces it), False when it failed its hash,
        None when its write failed or the torrent is closing."""
        index = buf.index
        if isinstance(result, BaseException):
            if not isinstance(result, StorageError):  # MemoryError, a bug in a backend...: never silent
                logger.error("piece %d: write failed: %r", index, result)
            if self.closed:
                return None
            self.picker.on_piece_failed(index)  # downloaded again
            if buf.epoch != self.task.retry_epoch:
                # started before the torrent was retried out of its error state (a full disk, say): the error
                # was reported then; the retry must not fail on it again. A new write fails it if it still holds.
                logger.info(
                    "piece %d: a write from before the retry failed (%s); downloading it again", index, result
                )
                return None
            self.task.fail(result if isinstance(result, Exception) else StorageError(repr(result)))
            return None
        if self.closed:
            return None
        if result:
            if self.smart_ban.pending(index):
                for addr in self.smart_ban.record_success(index, block_hashes(buf.data)):
                    self.task.ban_address(addr, "sent corrupt data (smart ban)")
            self.picker.on_piece_passed(index)
        else:
            senders = self.picker.block_senders(index)
            self.picker.on_piece_failed(index)
            addrs = [None if s is None else s.addr for s in senders]  # type: ignore[attr-defined]
            guilty = self.smart_ban.record_failure(index, addrs, block_hashes(buf.data))
            self.task.on_piece_failed(index, {a for a in addrs if a is not None}, guilty)
        self._recycle(buf)
        return bool(result)

    def _new_buffer(self, index: int, length: int) -> PieceBuffer:
        """A piece buffer, reusing a finished one of the same size (no fresh allocation and page faults per
        piece). Pieces with pad blocks always get a zeroed buffer: their pad bytes are never received."""
        free = self._free.get(length)
        if free and index not in self.pad_pieces:
            return PieceBuffer(index, length, free.pop())
        return PieceBuffer(index, length)

    def _recycle(self, buf: PieceBuffer) -> None:
        free = self._free.setdefault(buf.length, [])
        if len(free) < self.max_free_buffers:
            free.append(buf.data)

    @property
    def pooled_buffers(self) -> int:
        """Finished piece buffers kept for the next pieces (none once the download is finished)."""
        return sum(len(free) for free in self._free.values())

    @property
    def write_backlog(self) -> bool:
        """The write queue is full: stop reading peers (their sockets then hold the sender back)."""
        return self.pending_writes >= self.max_pending_writes

    @property
    def write_backlog_drained(self) -> bool:
        """The write queue is back to half: read peers again. Not at the first free slot: on a disk slower than the
        network that paused and resumed every peer for every piece written (411-706 times per GiB from a libtorrent
        seeder on loopback; 49-56 now, the time spent paused the same)."""
        return self.pending_writes <= self.max_pending_writes // 2

    # --- upload --------------------------------------------------------------------------------------------

    def cached_piece(self, piece: int) -> bytes | bytearray | None:
        data = self._cache.get(piece)
        if data is not None:
            self._cache.move_to_end(piece)
        return data

    def read_block_nowait(self, piece: int, offset: int, length: int) -> bytes | bytearray | None:
        """One block read on the loop thread when it is in the page cache (nothing cached here), else None."""
        nowait = getattr(self.storage, "read_nowait", None)
        data = None if nowait is None else nowait(piece, offset, length)
        if data is not None:
            self.task.counters["blocks_read"] += 1
        return data

    def read_block(self, piece: int, offset: int, length: int) -> asyncio.Future[bytes]:
        """One block read on the worker threads (not cached: for a peer that wants just this block)."""

        async def _read() -> bytes:
            try:
                return await self.storage.read_block(piece, offset, length)
            except (ShoalError, asyncio.CancelledError):
                raise
            except Exception as exc:  # the waiter puts the torrent in error
                raise StorageError(f"read of piece {piece} at {offset} failed: {exc!r}") from exc

        self.task.counters["blocks_read"] += 1
        task = asyncio.ensure_future(_read())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _put_cache(self, piece: int, data: bytes | bytearray) -> None:
        self._cache[piece] = data
        while len(self._cache) > self._cache_max:
            _, old = self._cache.popitem(last=False)
            self._give_back(old)

    def _give_back(self, buf: bytes | bytearray) -> None:
        if (
            isinstance(buf, bytearray)
            and len(buf) == self.piece_length
            and len(self._spare) < self._max_spare
        ):
            self._spare.append(buf)

    def _spare_buffer(self, size: int) -> bytearray | None:
        """A spare buffer no block view holds any more, for a full-size piece; None to make a new one."""
        if size != self.piece_length:
            return None
        spare = self._spare
        for i in range(len(spare) - 1, -1, -1):
            if unshared(spare[i]):
                return spare.pop(i)
        return None

    def read_piece(self, piece: int) -> asyncio.Future[bytes | bytearray]:
        """A future for the whole piece, shared by every waiter; fills the cache."""
        fut = self._reads.get(piece)
        if fut is not None:
            return fut
        fut = asyncio.get_running_loop().create_future()
        self.task.counters["pieces_read"] += 1
        nowait = getattr(self.storage, "read_piece_nowait", None)
        data = None
        if nowait is not None:
            into = self._spare_buffer(self.picker.piece_size(piece))
            data = nowait(piece, into)
            if data is None and into is not None:
                self._spare.append(into)
        if data is not None:  # all in the page cache: read here, no worker-thread round trip
            self._put_cache(piece, data)
            fut.set_result(data)
            return fut
        self._reads[piece] = fut

        async def _read() -> None:
            try:
                data = await self.storage.read_piece(piece)
            except asyncio.CancelledError:
                fut.cancel()
                raise
            except Exception as exc:  # StorageError, or anything else: the waiters put the torrent in error
                fut.set_exception(
                    exc
                    if isinstance(exc, ShoalError)
                    else StorageError(f"read of piece {piece} failed: {exc!r}")
                )
                fut.exception()  # mark retrieved; waiters re-raise
            else:
                self._put_cache(piece, data)
                fut.set_result(data)
            finally:
                self._reads.pop(piece, None)

        self._spawn(_read())
        return fut

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Wait for piece writes in flight (bounded), then drop buffers."""
        if self.pending_writes:
            self._finished_writes = asyncio.Event()
            self.collect_writes()
            try:
                await asyncio.wait_for(self._finished_writes.wait(), timeout=10)
            except TimeoutError:
                logger.warning("%d piece writes still pending at close", self.pending_writes)
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=10)
            for t in still:
                t.cancel()
        self.closed = True
        self.buffers.clear()
        self._cache.clear()
        self._free.clear()
        self._spare.clear()


def unshared(buf: bytearray) -> bool:
    """Whether no memoryview (or other buffer export) of ``buf`` is alive, so it may be written again.

    CPython refuses to resize a bytearray while it is exported: popping the last byte (and putting it back) is
    an O(1) probe that never reallocates (the size goes down by one, then back within the allocation).
    """
    try:
        last = buf.pop()
    except BufferError:
        return False
    except IndexError:
        return True  # empty
    buf.append(last)
    return True
