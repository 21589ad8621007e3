"""The download hot path without sockets: wire-style block batches into DownloadMixin.on_blocks / Transfer.on_blocks,
slow start of the request pipeline, finished pieces handed to the storage and their results collected."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import random
from types import SimpleNamespace
from typing import Any

from shoal.config import Settings
from shoal.engine.download import DownloadMixin
from shoal.engine.transfer import Transfer
from shoal.policy.picker import PiecePicker
from shoal.policy.requests import RequestTracker
from shoal.types import BlockRef

BLOCK = 16 * 1024
PIECE = 4 * BLOCK
PIECES = 6


def content(piece: int) -> bytes:
    return bytes([piece + 1]) * PIECE


class Storage:
    """Hashes like FileStorage and reports at once (as a worker would, but on the calling thread)."""

    def __init__(self) -> None:
        self.written: dict[int, bytes] = {}

    def submit_hash_and_write_many(self, items: Any, done: Any) -> None:
        results = []
        for piece, data, expected in items:
            ok = hashlib.sha1(data).digest() == expected
            if ok:
                self.written[piece] = bytes(data)
            results.append(ok)
        done(results)


class Task:
    def __init__(self) -> None:
        self.counters: collections.Counter[str] = collections.Counter()
        self.passed: list[int] = []
        self.paused = False
        self.state = SimpleNamespace(value="downloading")
        self.rates = SimpleNamespace(take_down=lambda n, now: True)
        self.transfer: Transfer | None = None
        self.retry_epoch = 0

    def on_pieces_passed(self, indices: list[int]) -> None:
        self.passed += indices

    def resume_reading_if_idle(self) -> None:
        pass


class Peers(DownloadMixin):
    def __init__(self, task: Task, settings: Settings) -> None:
        self.task = task  # type: ignore[assignment]
        self.settings = settings
        self.session = SimpleNamespace(clock=SimpleNamespace(now=lambda: 1.0))  # type: ignore[assignment]


class Peer:
    """The PeerTask fields the download path uses; requests are recorded instead of sent. ``ledger`` plays the wire
    connection's ledger of our requests, which the tracker reads."""

    def __init__(self) -> None:
        self.ledger: dict[tuple[int, int, int], float] = {}
        self.tracker = RequestTracker(request_timeout=30.0, snub_timeout=60.0, ledger=self.ledger)
        self.conn = SimpleNamespace(am_interested=True, peer_choking=False, allowed_fast=frozenset())
        self.depth = 4
        self.reqq = 250
        self.slow_start = True
        self.starved = False
        self.closed = False
        self.attached = True
        self.downloaded = 0
        self.down_window = 0
        self.sent: list[BlockRef] = []

    def send_requests(self, blocks: list[BlockRef], now: float) -> None:
        self.sent += blocks
        self.ledger.update(dict.fromkeys(blocks, now))

    def pause_reading(self) -> None:
        raise AssertionError("nothing should pause reading here")


def setup(settings: Settings | None = None) -> tuple[Peers, Peer, Task, Storage]:
    task = Task()
    picker = PiecePicker(PIECES, PIECE, PIECES * PIECE, rng=random.Random(1))
    storage = Storage()
    task.transfer = Transfer(task, picker, storage, lambda i: hashlib.sha1(content(i)).digest())  # type: ignore[arg-type]
    peers = Peers(task, settings or Settings())
    peer = Peer()
    picker.peer_have_all(peer)
    return peers, peer, task, storage


def answer(peer: Peer, count: int) -> tuple[memoryview, list[tuple[int, int, int, int]]]:
    """The next ``count`` requested blocks as one receive buffer with 13-byte headers in between (out of the
    ledger, as the wire takes each piece message that answers a request)."""
    buf = bytearray()
    blocks = []
    for ref in peer.sent[:count]:
        del peer.ledger[ref]
        buf += bytes(13)
        blocks.append((ref.piece, ref.offset, len(buf), len(buf) + ref.length))
        buf += content(ref.piece)[ref.offset : ref.offset + ref.length]
    del peer.sent[:count]
    return memoryview(buf), blocks


async def test_blocks_land_in_their_pieces_and_pieces_are_written() -> None:
    peers, peer, task, storage = setup()
    peers.fill(peer)
    while peer.sent:
        peers.on_blocks(peer, *answer(peer, 3))
    await asyncio.sleep(0)  # the last result is collected by the loop's wake-up (others at the next read)
    assert sorted(task.passed) == list(range(PIECES))
    assert storage.written == {i: content(i) for i in range(PIECES)}
    assert task.counters["bytes_downloaded"] == PIECES * PIECE
    assert len(peer.tracker) == 0


async def test_slow_start_grows_the_depth_per_block_up_to_the_limits() -> None:
    peers, peer, _, _ = setup(Settings(max_outstanding_requests=10))
    peers.fill(peer)
    assert len(peer.sent) == 4
    peers.on_blocks(peer, *answer(peer, 3))
    assert peer.depth == 7  # 4 + 3 blocks
    assert len(peer.tracker) == 7  # refilled to the new depth
    peers.on_blocks(peer, *answer(peer, 7))
    assert peer.depth == 10  # max_outstanding_requests
    peer.slow_start = False
    peers.on_blocks(peer, *answer(peer, 2))
    assert peer.depth == 10


async def test_finished_buffers_are_reused_and_given_back_at_the_end() -> None:
    peers, peer, task, _ = setup()
    tr = task.transfer
    assert tr is not None
    peers.fill(peer)
    buffers = set()
    while peer.sent:
        peers.on_blocks(peer, *answer(peer, 2))
        buffers |= {id(b.data) for b in tr.buffers.values()}
    await asyncio.sleep(0)
    assert len(buffers) < PIECES  # pieces after the first reuse a finished one's buffer
    assert tr.pending_writes == 0 and tr.pooled_buffers == 0  # finished: nothing pooled any more


class HeldStorage(Storage):
    """Keeps each piece's completion callback until the test reports a result for it."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[int, Any] = {}

    def submit_hash_and_write_many(self, items: Any, done: Any) -> None:
        for piece, _, _ in items:  # one result each (the tests finish one piece per read)
            self.held[piece] = lambda result, piece=piece: done([result])
        assert len(items) == 1


async def test_a_write_failing_after_the_retry_fails_its_piece_not_the_retried_torrent() -> None:
    from shoal.errors import DiskFullError

    peers, peer, task, _ = setup()
    storage = HeldStorage()
    tr = task.transfer
    assert tr is not None
    tr.storage = storage  # type: ignore[assignment]
    failures: list[BaseException] = []
    task.fail = failures.append  # type: ignore[attr-defined]
    peers.fill(peer)
    while peer.sent and len(storage.held) < 2:
        peers.on_blocks(peer, *answer(peer, 1))
    first, second = sorted(storage.held)
    storage.held.pop(first)(DiskFullError("no space left on device"))
    await asyncio.sleep(0)
    assert len(failures) == 1  # the disk filled: the torrent goes to its error state
    task.retry_epoch = 1  # resume(): space is back, try again
    storage.held.pop(second)(DiskFullError("no space left on device"))  # in flight since before the retry
    await asyncio.sleep(0)
    assert len(failures) == 1  # not failed again by the old write
    assert not tr.picker.have(second) and not tr.picker.is_piece_complete(second)  # downloaded again
    assert tr.pending_writes == 0


async def test_a_full_write_queue_stops_reading_the_peer_until_a_write_finishes() -> None:
    """A slow disk holds memory to the write queue's bound: once that many finished pieces wait for their hash and
    write, the peer is no longer read (the kernel's socket buffer then stops the sender), and the buffers held
    are the queue's, not one per piece the peer could still send."""
    peers, peer, task, _ = setup()
    storage = HeldStorage()
    picker = PiecePicker(PIECES, PIECE, PIECES * PIECE, rng=random.Random(1))
    tr = Transfer(task, picker, storage, lambda i: hashlib.sha1(content(i)).digest(), max_pending_writes=2)  # type: ignore[arg-type]
    task.transfer = tr
    picker.peer_have_all(peer)
    paused: list[int] = []
    peer.pause_reading = lambda: paused.append(len(storage.held))  # type: ignore[method-assign]
    resumed: list[int] = []
    task.resume_reading_if_idle = lambda: resumed.append(tr.pending_writes)  # type: ignore[method-assign]
    peers.fill(peer)
    while peer.sent and not paused:
        peers.on_blocks(peer, *answer(peer, 1))
    assert paused == [2] and tr.pending_writes == 2 and tr.write_backlog  # paused as the second piece queued
    first = min(storage.held)
    storage.held.pop(first)(True)
    await asyncio.sleep(0)
    assert tr.pending_writes == 1 and not tr.write_backlog
    assert resumed == [1]  # the torrent is told it may read again


async def test_reading_resumes_once_the_write_queue_is_back_to_half() -> None:
    """Pause at the bound, resume at half of it: not a pause and a resume of every peer per piece written."""
    _, _, task, storage = setup()
    picker = PiecePicker(PIECES, PIECE, PIECES * PIECE, rng=random.Random(1))
    tr = Transfer(task, picker, storage, lambda i: b"", max_pending_writes=4)  # type: ignore[arg-type]
    states = []
    for pending in (4, 3, 2, 0):
        tr.pending_writes = pending
        states.append((tr.write_backlog, tr.write_backlog_drained))
    assert states == [(True, False), (False, False), (False, True), (False, True)]


def test_the_write_queue_is_a_byte_budget_bounded_in_pieces() -> None:
    from shoal.engine.transfer import write_queue_pieces

    mib = 1024 * 1024
    s = Settings()
    budget, cap = s.max_pending_write_bytes, s.max_pending_piece_writes
    assert write_queue_pieces(mib, budget, cap) == 16
    assert write_queue_pieces(4 * mib, budget, cap) == 4
    assert write_queue_pieces(16 * mib, budget, cap) == 2  # the floor (16 pieces of 16 MiB held 256 MiB)
    assert write_queue_pieces(16 * 1024, budget, cap) == 256  # the cap (16 pieces of 16 KiB were 256 KiB)


class BatchRecordingStorage(Storage):
    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[list[int]] = []

    def submit_hash_and_write_many(self, items: Any, done: Any) -> None:
        self.jobs.append([piece for piece, _, _ in items])
        super().submit_hash_and_write_many(items, done)


async def test_pieces_finished_by_one_read_go_to_the_disk_as_one_job(monkeypatch: Any) -> None:
    """Small pieces finished by one read are one hand-off to a worker (and one wake-up of the loop), up to
    WRITE_BATCH_BYTES; the pieces passed are announced together."""
    import shoal.engine.transfer as transfer_module

    for batch_bytes, want in (
        (256 * 1024, [[0, 1, 2]]),
        (PIECE + 1, [[0], [1], [2]]),
        (2 * PIECE, [[0, 1], [2]]),
    ):
        monkeypatch.setattr(transfer_module, "WRITE_BATCH_BYTES", batch_bytes)
        peers, peer, task, _ = setup()
        storage = BatchRecordingStorage()
        tr = task.transfer
        assert tr is not None
        tr.storage = storage  # type: ignore[assignment]
        peer.depth = 12
        peers.fill(peer)
        first = list(dict.fromkeys(b.piece for b in peer.sent[:12]))  # in the order they complete
        assert len(first) == 3
        peers.on_blocks(peer, *answer(peer, 12))  # three whole pieces in one read
        await asyncio.sleep(0)
        assert [[first.index(p) for p in job] for job in storage.jobs] == want
        assert sorted(task.passed) == sorted(first)
        assert storage.written == {i: content(i) for i in first}
