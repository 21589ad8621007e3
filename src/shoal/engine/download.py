"""The download side of a torrent's peers: the block hot path, request pipelines, rejects, chokes and time-outs.

``on_blocks`` is the per-block path, one call per read of a peer (the wire batches the piece messages that came
back to back): per block one tracker pop, one picker call and one copy from the receive buffer into the piece
buffer; per batch the counters, the rate limit, and a refill of the peer's pipeline only when it has drained by a
quarter of its depth (so ``pick`` runs once per many blocks, and its requests go out as one write).

Pipeline depth: a new peer starts at 128 requests in slow start (as libtorrent's request queue): every block
received adds one, so the pipeline doubles per round trip, up to ``max_outstanding_requests`` and the peer's
``reqq``; at a tick (peers.py ``_size_pipeline``) the measured rate takes over once it asks for as much, or once
the rate stops growing. Mixed into :class:`~shoal.engine.peers.PeerSet`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoal.types import BlockRef
from shoal.wire import events as ev

if TYPE_CHECKING:
    from shoal.config import Settings
    from shoal.engine.peer import PeerTask
    from shoal.engine.session import Session
    from shoal.engine.torrent import TorrentTask


class DownloadMixin:
    task: TorrentTask
    session: Session
    settings: Settings

    def _on_choked(self, peer: PeerTask, event: ev.PeerChoked) -> None:
        tr = self.task.transfer
        if tr is None:
            return
        for piece, offset, length in event.dropped:  # out of the wire's ledger (the tracker's) already
            tr.picker.abort(peer, BlockRef(piece, offset, length))

    def _on_unchoked(self, peer: PeerTask, event: ev.PeerUnchoked) -> None:
        self.fill(peer)

    # --- download --------------------------------------------------------------------------------------------

    def on_blocks(self, peer: PeerTask, data: memoryview, blocks: list[tuple[int, int, int, int]]) -> None:
        """Blocks from one read of ``peer`` (a wire ``BlocksReceived``: ``data[start:end]`` per block, valid only
        during this call)."""
        t = self.task
        tr = t.transfer
        if tr is None:
            return
        now = self.session.clock.now()
        tracker = peer.tracker
        if tracker is not None:
            tracker.block_arrived(now)  # the wire took them out of its ledger, which is the tracker's
        n = tr.on_blocks(peer, data, blocks)
        if peer.slow_start:
            peer.depth = min(peer.depth + len(blocks), self.settings.max_outstanding_requests, peer.reqq)
        peer.downloaded += n
        peer.down_window += n
        t.counters["bytes_downloaded"] += n
        if not t.rates.take_down(n, now) or tr.write_backlog:
            peer.pause_reading()
        if (
            tracker is not None
            and len(tracker) <= peer.depth - (peer.depth >> 2)
            and (not peer.starved or not tracker)
        ):
            self.fill(peer)

    def fill(self, peer: PeerTask) -> None:
        tr = self.task.transfer
        conn = peer.conn
        tracker = peer.tracker
        if (
            tr is None
            or conn is None
            or tracker is None
            or peer.closed
            or not peer.attached
            or self.task.paused
            or self.task.state.value == "checking"
        ):
            return
        want = peer.depth - len(tracker)
        if want <= 0 or not conn.am_interested:
            return
        if conn.peer_choking:
            fast = conn.allowed_fast
            if not fast:
                return
            blocks = tr.picker.pick(peer, want, only=fast)
        else:
            blocks = tr.picker.pick(peer, want)
        # Nothing (or little) left to ask this peer: stop re-picking on every block until the next tick or until
        # its pipeline is empty (end-game picks scan every partial piece).
        peer.starved = len(blocks) < want
        if not blocks:
            return
        now = self.session.clock.now()
        tracker.requesting(now)
        peer.send_requests(blocks, now)  # the wire enters them in its ledger, which is the tracker's

    def _on_rejected(self, peer: PeerTask, event: ev.Rejected) -> None:
        tr = self.task.transfer
        if tr is not None:  # out of the wire's ledger (the tracker's) already
            tr.picker.abort(peer, BlockRef(event.piece, event.offset, event.length))

    def _expire_requests(self, peer: PeerTask, now: float) -> None:
        tr = self.task.transfer
        tracker = peer.tracker
        if tr is None or tracker is None:
            return
        for block in tracker.timed_out(now):
            peer.send_cancel(block)  # out of the ledger
            tr.picker.abort(peer, block)
