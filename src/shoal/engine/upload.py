"""The upload side of a torrent's peers: choking (tit-for-tat via policy.choker) and serving requests.

Requests queue on each peer and are sent as long as the peer's socket accepts more and the upload limits allow. A
piece the peer asks several blocks of (the usual download order) is read whole once into the transfer's cache (read
ahead as soon as the second request for it arrives) and its blocks are sent from there. A lone block (a peer asking
all over the torrent, as many peers at once look to a seeder) is read by itself, from the page cache on the loop
thread when it is there: caching a whole piece for one block read 64x the data and kept the cache full (issue 7:
1 MiB pieces, 100 such peers, 208 KiB of RSS and 2.4 ms/s of CPU per connection). Mixed into
:class:`~shoal.engine.peers.PeerSet`.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from typing import TYPE_CHECKING

from shoal.policy.choker import Choker, PeerStats
from shoal.types import BLOCK_SIZE
from shoal.wire import events as ev
from shoal.wire import messages as m

if TYPE_CHECKING:
    from shoal.config import Settings
    from shoal.engine.peer import PeerTask
    from shoal.engine.session import Session
    from shoal.engine.torrent import TorrentTask
    from shoal.engine.transfer import Transfer

logger = logging.getLogger(__name__)


class UploadMixin:
    task: TorrentTask
    session: Session
    settings: Settings
    active: list[PeerTask]
    choker: Choker
    _last_choke: float | None
    _serve_turn: int
    _serve_sharing: int
    slot_freed: bool

    def _on_interested(self, peer: PeerTask, event: ev.PeerInterested) -> None:
        conn = peer.conn
        assert conn is not None
        slots = self.settings.upload_slots
        if conn.am_choking and (slots <= 0 or self._unchoked_count() < slots):
            peer.unchoked_since = self.session.clock.now()
            peer.send_message(conn.send(m.Unchoke()))

    def _on_not_interested(self, peer: PeerTask, event: ev.PeerNotInterested) -> None:
        conn = peer.conn
        if conn is not None and not conn.am_choking:
            peer.send_message(conn.send(m.Choke()))
            self.slot_freed = True  # given to a waiting peer on the next tick
        if peer.upload_queue:
            peer.upload_queue.clear()
        if peer.is_seed and self.task.is_finished:
            peer.close("both sides are seeds")

    # --- upload ----------------------------------------------------------------------------------------------

    def _on_requested(self, peer: PeerTask, event: ev.BlockRequested) -> None:
        self._queue_requests(peer, [(event.piece, event.offset, event.length)])

    def _on_requested_many(self, peer: PeerTask, event: ev.BlocksRequested) -> None:
        self._queue_requests(peer, event.requests)

    def _queue_requests(self, peer: PeerTask, requests: list[tuple[int, int, int]]) -> None:
        t = self.task
        have = t.have
        if have is None:
            return
        queue = peer.upload_queue
        if queue is None:
            queue = peer.upload_queue = collections.deque()
        tr = t.transfer
        half_cache = tr.cache_bytes // 2 if tr is not None else 0
        for piece, offset, length in requests:
            if piece not in have:
                continue  # the connection only passes requests for pieces we advertised
            queue.append((piece, offset, length))
            if len(queue) == 1:
                peer.serve_due = (
                    True  # served at the end of this read's events, together with the rest of them
                )
            elif (
                tr is not None
                and queue[-2][0] == piece
                and len(queue) * length <= half_cache
                and tr.cached_piece(piece) is None
            ):
                # several blocks of this piece wanted: read ahead the whole piece while earlier requests are served,
                # as long as what is queued fits the cache twice (a deeper queue means the socket is the limit, and
                # reading ahead would evict pieces still to be sent)
                tr.read_piece(piece)

    def _on_cancelled(self, peer: PeerTask, event: ev.RequestCancelled) -> None:
        pass  # the connection forgets it; serve() skips requests that are gone

    def serve(self, peer: PeerTask, blocks: int | None = None) -> int:
        """Send the peer's queued blocks while its socket and the upload limits allow; returns the bytes sent.

        Under an upload limit a call sends at most ``blocks`` blocks. By default (a request arrived, the socket
        drained) that is the peer's share of what the buckets hold now, split among the upload slots (or the
        peers that were waiting at the last tick, if more), at least one block. The tick shares out the rest
        with :meth:`serve_in_turn`, a block per peer per round, so no peer drains the buckets because it was
        served first."""
        tr = self.task.transfer
        conn = peer.conn
        queue = peer.upload_queue
        if tr is None or conn is None or not queue:
            return 0
        t = self.task
        rates = t.rates
        limited = rates.upload_limited()
        now = self.session.clock.now()
        if not limited:
            budget = -1  # blocks left to send; -1: no cap
        elif blocks is not None:
            budget = blocks
        else:
            # split as if every upload slot were waiting (the ones that were at the last tick, if more): a
            # peer's turn never takes what the other unchoked peers are about to ask for
            slots = self.settings.upload_slots
            sharing = max(self._serve_sharing, min(slots, len(self.active)) if slots > 0 else 1)
            budget = max(1, int(rates.up_available(now) // (BLOCK_SIZE * sharing)))
        sent = 0
        last_piece = -1
        view: memoryview | None = None
        chunk = peer.serve_chunk
        unflushed = 0
        while queue and budget and not peer.write_paused and not peer.closed:
            piece, offset, length = queue[0]
            if piece != last_piece and not conn.is_requested(piece, offset, length):
                queue.popleft()  # cancelled: not worth reading its piece (within a piece, send_block checks)
                continue
            if limited and not rates.can_up(now):
                break
            start = offset  # where the block starts in ``view``
            if piece != last_piece:
                data = tr.cached_piece(piece)
                if (
                    data is None
                    and piece != peer.last_served_piece
                    and (len(queue) < 2 or queue[1][0] != piece)
                ):
                    # A lone block of its piece (peers asking all over the torrent): read just the block. A whole
                    # piece would be read and cached for one block, then evicted before its other blocks are asked.
                    block = self._lone_block(peer, tr, piece, offset, length)
                    if block is None:
                        break  # being read from disk; serve() runs again when it is in
                    view, start, last_piece = memoryview(block), 0, -1
                else:
                    if data is None:
                        fut = tr.read_piece(piece)
                        if not fut.done() or fut.cancelled() or fut.exception() is not None:
                            fut.add_done_callback(functools.partial(self._read_done, peer))
                            break
                        data = fut.result()  # read from the page cache right here: no loop round trip
                    view, last_piece = memoryview(data), piece
            assert view is not None
            queue.popleft()
            peer.last_served_piece = piece
            # a view, not a slice: the block is copied once, into the frame the connection builds
            n = peer.send_block(piece, offset, view[start : start + length])
            if n:
                sent += n
                budget -= 1
                if limited:
                    rates.take_up(n, now)
                unflushed += n
                if unflushed >= chunk:
                    # hand this chunk to the transport now: once the socket is full it pauses us (write_paused),
                    # instead of every queued block waiting in user space as views that pin their pieces
                    unflushed = 0
                    peer.flush()
        if sent:
            peer.uploaded += sent
            peer.up_window += sent
            t.counters["bytes_uploaded"] += sent
            if not limited:
                rates.take_up(sent, now)  # counts it for the rate estimate
        return sent

    def serve_in_turn(self, now: float) -> None:
        """Under an upload limit (from the tick): what the buckets allow, a block per waiting peer per round,
        starting one peer further along each time. Ends when the buckets are dry or no peer can take more (each
        round sends a block or drops a peer, so it ends)."""
        waiting = [p for p in self.active if p.upload_queue and not p.write_paused and not p.closed]
        self._serve_sharing = max(1, len(waiting))
        if not waiting:
            return
        k = self._serve_turn % len(waiting)
        self._serve_turn += 1
        waiting = waiting[k:] + waiting[:k]
        rates = self.task.rates
        while waiting and rates.can_up(now):
            waiting = [
                p
                for p in waiting
                if rates.can_up(now)
                and self.serve(p, 1)
                and p.upload_queue
                and not p.write_paused
                and not p.closed
            ]

    def _lone_block(
        self, peer: PeerTask, tr: Transfer, piece: int, offset: int, length: int
    ) -> bytes | bytearray | None:
        """The block at the head of the peer's queue: from the page cache at once, else None while the worker
        threads read it (one read per peer at a time; it is kept on the peer until serve() takes it)."""
        key = (piece, offset, length)
        pending = peer.block_read
        if pending is not None:
            peer.block_read = None
            pending_key, fut = pending
            if pending_key == key:
                if not fut.done():
                    peer.block_read = pending
                    return None
                if not fut.cancelled() and fut.exception() is None:
                    return fut.result()
                return None  # _read_done has put the torrent in error
        block = tr.read_block_nowait(piece, offset, length)
        if block is not None:
            return block
        fut = tr.read_block(piece, offset, length)
        peer.block_read = (key, fut)
        fut.add_done_callback(functools.partial(self._read_done, peer))
        return None

    def _read_done(self, peer: PeerTask, fut: asyncio.Future[bytes | bytearray]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            logger.warning("torrent %s: read failed: %s", self.task.name, exc)
            self.task.fail(exc)
            return
        if peer.attached and not peer.closed:
            self.serve(peer)

    def _unchoked_count(self) -> int:
        return sum(1 for p in self.active if p.conn is not None and not p.conn.am_choking)

    def fill_free_slots(self, now: float) -> None:
        """Unchoke waiting interested peers into the slots that came free since the last round (no one is choked)."""
        self.slot_freed = False
        chosen = self.choker.fill(self._choke_stats(), self.session.rng, seeding=self.task.is_finished)
        for peer in self.active:
            conn = peer.conn
            if peer in chosen and conn is not None and conn.am_choking and not peer.closed:
                peer.unchoked_since = now
                peer.send_message(conn.send(m.Unchoke()))

    def _choke_stats(self) -> list[PeerStats]:
        stats = []
        for p in self.active:
            conn = p.conn
            if conn is None or p.closed:
                continue
            stats.append(
                PeerStats(
                    peer=p,
                    interested=conn.peer_interested,
                    download_rate=p.down_rate,
                    upload_rate=p.up_rate,
                    uploaded=p.uploaded,
                    downloaded=p.downloaded,
                    unchoked_since=None if conn.am_choking else p.unchoked_since,
                    snubbed=p.snubbed,
                    is_seed=p.is_seed,
                )
            )
        return stats

    def rechoke(self, now: float) -> None:
        """Apply the choker's decision (tit-for-tat when leeching, round robin when seeding, one optimistic)."""
        self._last_choke = now
        self.slot_freed = False
        stats = self._choke_stats()
        decision = self.choker.decide(stats, now, self.session.rng, seeding=self.task.is_finished)
        for peer in self.active:
            conn = peer.conn
            if conn is None or peer.closed:
                continue
            if peer in decision.unchoke and conn.am_choking:
                peer.unchoked_since = now
                peer.send_message(conn.send(m.Unchoke()))
            elif peer not in decision.unchoke and not conn.am_choking:
                peer.send_message(conn.send(m.Choke()))
                if peer.upload_queue:
                    peer.upload_queue.clear()
