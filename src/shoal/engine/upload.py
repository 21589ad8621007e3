"""The upload side of a torrent's peers: choking (tit-for-tat via policy.choker) and serving requests.

Requests queue on each peer; whole pieces are read once into the transfer's cache (read ahead as soon as they are
requested) and each block is sent from there, as long as the peer's socket accepts more and the upload limits
allow. Mixed into :class:`~shoal.engine.peers.PeerSet`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING

from shoal.policy.choker import Choker, PeerStats
from shoal.wire import events as ev
from shoal.wire import messages as m

if TYPE_CHECKING:
    from shoal.config import Settings
    from shoal.engine.peer import PeerTask
    from shoal.engine.session import Session
    from shoal.engine.torrent import TorrentTask

logger = logging.getLogger(__name__)


class UploadMixin:
    task: TorrentTask
    session: Session
    settings: Settings
    active: list[PeerTask]
    choker: Choker
    _last_choke: float | None

    def _on_interested(self, peer: PeerTask, event: ev.PeerInterested) -> None:
        conn = peer.conn
        assert conn is not None
        if conn.am_choking and self._unchoked_count() < self.settings.upload_slots:
            peer.unchoked_since = self.session.clock.now()
            peer.send_message(conn.send(m.Unchoke()))

    def _on_not_interested(self, peer: PeerTask, event: ev.PeerNotInterested) -> None:
        conn = peer.conn
        if conn is not None and not conn.am_choking:
            peer.send_message(conn.send(m.Choke()))
        peer.upload_queue.clear()
        if peer.is_seed and self.task.is_finished:
            peer.close("both sides are seeds")

    # --- upload ----------------------------------------------------------------------------------------------

    def _on_requested(self, peer: PeerTask, event: ev.BlockRequested) -> None:
        t = self.task
        if t.have is None or not t.have.has(event.piece):
            return  # the connection only passes requests for pieces we advertised
        peer.upload_queue.append((event.piece, event.offset, event.length))
        tr = t.transfer
        if tr is not None and tr.cached_piece(event.piece) is None:
            tr.read_piece(event.piece)  # read ahead: the disk works while earlier requests are served
        if len(peer.upload_queue) == 1:
            self.serve(peer)

    def _on_cancelled(self, peer: PeerTask, event: ev.RequestCancelled) -> None:
        pass  # the connection forgets it; serve() skips requests that are gone

    def serve(self, peer: PeerTask) -> None:
        tr = self.task.transfer
        conn = peer.conn
        if tr is None or conn is None:
            return
        queue = peer.upload_queue
        t = self.task
        rates = t.rates
        limited = rates.upload_limited()
        sent = 0
        now = self.session.clock.now()
        last_piece = -1
        view: memoryview | None = None
        while queue and not peer.write_paused and not peer.closed:
            piece, offset, length = queue[0]
            if not conn.is_requested(piece, offset, length):
                queue.popleft()
                continue
            if limited and not rates.can_up(now):
                break
            if piece != last_piece:
                data = tr.cached_piece(piece)
                if data is None:
                    fut = tr.read_piece(piece)
                    fut.add_done_callback(functools.partial(self._read_done, peer))
                    break
                view = memoryview(data)
                last_piece = piece
            assert view is not None
            queue.popleft()
            # a view, not a slice: the block is copied once, into the frame the connection builds
            n = peer.send_block(piece, offset, view[offset : offset + length])
            if n:
                sent += n
                if limited:
                    rates.take_up(n, now)
        if sent:
            peer.uploaded += sent
            peer.up_window += sent
            t.counters["bytes_uploaded"] += sent
            if not limited:
                rates.take_up(sent, now)  # counts it for the rate estimate

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

    def rechoke(self, now: float) -> None:
        """Apply the choker's decision (tit-for-tat when leeching, round robin when seeding, one optimistic)."""
        self._last_choke = now
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
                peer.upload_queue.clear()
