"""PeerSet: the peers of one torrent — connecting, accepting, choking, request pipelines, serving, banning.

Wire events from each :class:`~shoal.engine.peer.PeerTask` land here (``on_event`` dispatches on the event type).
The hot path is ``on_blocks`` (download.py), once per read of a peer: per block one dict pop, one picker call and
one copy into the piece buffer; a refill of the peer's pipeline only when it has drained by a quarter of its depth.

Dialing and admitting peers is dialing.py's (mixed in, as download.py and upload.py are); known peers, back-off and
bans live in a :class:`~shoal.policy.peer_book.PeerBook`; unchoking is decided by
:class:`~shoal.policy.choker.Choker`; pipeline depth by :func:`~shoal.policy.requests.pipeline_depth` from each
peer's measured rate (``request_queue_time`` seconds of data in flight), and stale requests by each peer's
:class:`~shoal.policy.requests.RequestTracker`.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from shoal.engine import alerts as al
from shoal.engine.dialing import DialMixin, ban_key
from shoal.engine.download import DownloadMixin
from shoal.engine.upload import UploadMixin
from shoal.errors import DisconnectReason
from shoal.policy.bitfield import Bitfield
from shoal.policy.choker import Choker
from shoal.policy.peer_book import PeerBook, PeerSource
from shoal.policy.requests import RequestTracker, pipeline_depth
from shoal.types import BLOCK_SIZE, PeerAddr
from shoal.wire import events as ev
from shoal.wire import messages as m

if TYPE_CHECKING:
    from shoal.engine.peer import PeerTask
    from shoal.engine.torrent import TorrentTask

logger = logging.getLogger(__name__)


INITIAL_DEPTH = 128  # requests in flight to a peer before its rate is known (2 MiB)


class PeerSet(DialMixin, DownloadMixin, UploadMixin):
    def __init__(self, task: TorrentTask) -> None:
        self.task = task
        self.session = task.session
        s = self.settings = task.session.settings
        self.active: list[PeerTask] = []
        self.by_addr: dict[PeerAddr, PeerTask] = {}
        self.by_id: dict[bytes, PeerTask] = {}
        self.connecting: set[PeerAddr] = set()
        self.book = PeerBook(
            rng=self.session.rng,
            max_peers=s.max_known_peers,
            max_bans=s.max_banned_ips,
            max_hash_failures=s.max_hash_failures_before_ban,
            backoff=s.peer_connect_backoff,
            backoff_max=s.peer_connect_backoff_max,
            max_failures=s.max_connect_failures,
        )
        self.banned_ids: set[bytes] = set()
        self.choker = Choker(
            slots=s.upload_slots,
            optimistic_interval=s.optimistic_unchoke_interval,
            seed_slot_time=s.seed_choke_slot_time,
        )
        self._last_choke: float | None = None
        self._serve_turn = 0  # where serve_in_turn starts next
        # under an upload limit: how many peers were waiting to be served at the last tick
        self._serve_sharing = 1
        self.slot_freed = False  # an unchoked peer left or lost interest since the last choke round
        # seeds we left because we were finished too: dialed again at once if more files are selected
        self.seeds_left: list[PeerAddr] = []

    # --- counts ----------------------------------------------------------------------------------------------

    def count(self) -> int:
        return len(self.active)

    def seed_count(self) -> int:
        return sum(1 for p in self.active if p.is_seed)

    # --- attach / detach -------------------------------------------------------------------------------------

    def attach(self, peer: PeerTask, event: ev.Handshaken) -> None:
        if self.task.stopping:
            peer.close("shutting down")
            return
        if event.peer_id in self.banned_ids or self.is_banned(peer.addr):
            peer.close("banned")
            return
        old = self.by_id.get(event.peer_id)
        if old is not None:
            # Both sides dialed each other: keep the connection opened by the lower peer id, on both ends alike.
            ours = bytes(self.session.peer_id)
            if (ours if peer.initiator else event.peer_id) < (ours if old.initiator else event.peer_id):
                old.close("duplicate connection")
                self.detach(old)
            else:
                peer.close("duplicate connection")
                return
        if peer.initiator and peer.addr in self.by_addr:
            peer.close("duplicate connection")
            return
        now = self.session.clock.now()
        peer.attached = True
        peer.make_tracker(now)
        self.active.append(peer)
        self.by_id[event.peer_id] = peer
        if peer.initiator or peer.addr not in self.by_addr:
            self.by_addr[peer.addr] = peer
        if peer.initiator:
            self.book.on_connected(peer.addr, now)
        self.session.connections += 1
        t = self.task
        conn = peer.conn
        assert conn is not None
        if conn.supports_extensions:
            peer.send_message(
                conn.send_extension_handshake(
                    p=self.session.listen_port or None, upload_only=t.is_finished and t.transfer is not None
                )
            )
        self.send_have_state(peer)
        dht = self.session.dht
        if dht is not None and conn.reserved.dht and conn.peer_reserved.dht and dht.port:
            peer.send_message(conn.send(m.Port(dht.port)))
        self.session.post(al.PeerConnected(t.info_hash, peer.key, not peer.initiator))

    def detach(self, peer: PeerTask) -> None:
        if not peer.attached:
            return
        peer.attached = False
        if peer in self.active:
            self.active.remove(peer)
        if self.by_addr.get(peer.addr) is peer:
            del self.by_addr[peer.addr]
        if (
            peer.conn is not None
            and peer.conn.peer_id is not None
            and self.by_id.get(peer.conn.peer_id) is peer
        ):
            del self.by_id[peer.conn.peer_id]
        self.session.connections -= 1
        if peer.conn is not None and not peer.conn.am_choking:
            self.slot_freed = True  # given to a waiting peer on the next tick
        tr = self.task.transfer
        if tr is not None:  # its requests go back to the picker (their ledger goes with its connection)
            tr.picker.peer_left(peer)
        if self.task.magnet is not None:
            self.task.magnet.peer_lost(peer)
        if peer.initiator:
            self.book.on_disconnected(peer.addr, self.session.clock.now())
        elif peer.listen_port:
            self.book.on_disconnected(PeerAddr(peer.addr.host, peer.listen_port), self.session.clock.now())
        self.session.post(al.PeerDisconnected(self.task.info_hash, peer.key, peer.close_reason))
        t = self.task
        if self.seeds_left and not t.is_finished:
            self.redial_seeds_left()
        if (
            peer.downloaded > 0
            and peer.close_reason in (DisconnectReason.CLOSED_BY_PEER.value, DisconnectReason.INACTIVE.value)
            and not t.is_finished
            and not t.paused
            and not self.is_banned(peer.addr)
        ):
            # It was sending us data when the connection dropped: dial it again now, not after the back-off.
            self.redial([peer.addr if peer.initiator else PeerAddr(peer.addr.host, peer.listen_port)])
        self.task.resume_reading_if_idle()
        if tr is not None and not t.is_finished:  # a seed has nothing to pick up (and hundreds of peers)
            for other in self.active:
                self.fill(other)  # pick up the blocks it had requested

    def close_all(self, reason: str) -> None:
        for peer in list(self.active):
            peer.close(reason)

    def ban(self, addr: Hashable, reason: str) -> None:
        key = ban_key(addr) if isinstance(addr, PeerAddr) else str(addr)
        if self.book.is_banned(key):
            return
        self.book.ban(key, reason)
        logger.info("torrent %s: banned %s: %s", self.task.name, key, reason)
        self.task.counters["peers_banned"] += 1
        self.session.post(al.PeerBanned(self.task.info_hash, key, reason))
        for peer in list(self.active):
            if ban_key(peer.addr) == key:
                if peer.conn is not None and peer.conn.peer_id is not None:
                    self.banned_ids.add(peer.conn.peer_id)
                peer.close(f"banned: {reason}")

    # --- metadata / progress hooks ---------------------------------------------------------------------------

    def on_metadata(self) -> None:
        """Metadata and checking are done: late peers (magnet) learn our geometry; everyone gets our pieces."""
        t = self.task
        for peer in list(self.active):
            conn = peer.conn
            if conn is None or peer.closed:
                continue
            if conn.num_pieces is None:
                conn.set_num_pieces(**t.conn_geometry(with_metadata_size=False))
                peer._drain()  # BitfieldReceived now reaches the picker
            elif conn.peer_bitfield is not None:
                self._apply_bitfield(peer, conn.peer_bitfield)  # it may have come before the picker existed
            if peer.closed:
                continue
            self.send_have_state(peer)
            self.update_interest(peer)
            self.fill(peer)
        self._connect_some(self.session.clock.now())

    def send_have_state(self, peer: PeerTask) -> None:
        """Our piece set, once per connection, when checking is over (later pieces go out as haves)."""
        t = self.task
        conn = peer.conn
        if peer.have_sent or conn is None or peer.closed or t.have is None or t.state.value == "checking":
            return
        peer.have_sent = True
        peer.send_message(conn.send_have_state(t.have))

    def on_finished(self) -> None:
        for peer in list(self.active):
            conn = peer.conn
            if conn is None:
                continue
            if conn.am_interested and not peer.closed:
                peer.send_message(conn.send(m.NotInterested()))
            if peer.is_seed or not self.task.params.seed or self.task.state.value == "finished":
                self._leave_seed(peer)
                peer.close("both sides are seeds" if peer.is_seed else "done")

    def _leave_seed(self, peer: PeerTask) -> None:
        addr = self.dial_address(peer)
        left = self.seeds_left
        if (
            peer.is_seed
            and addr is not None
            and addr not in left
            and len(left) < self.settings.max_peers_per_torrent
        ):
            left.append(addr)

    def redial_seeds_left(self) -> None:
        """More files were selected after the download finished: the seeds we left are dialed again now (those
        whose connection is still closing, once it is gone: :meth:`detach`)."""
        gone = [a for a in self.seeds_left if a not in self.by_addr]
        if gone:
            self.seeds_left = [a for a in self.seeds_left if a in self.by_addr]
            self.redial(gone)

    def broadcast_have(self, indices: list[int]) -> None:
        for peer in self.active:
            conn = peer.conn
            if conn is not None and not peer.closed and peer.have_sent:
                send = conn.send
                peer.send_message(b"".join([send(m.Have(index)) for index in indices]))
        # Interest may drop for peers that have nothing else we want.
        for peer in list(self.active):
            if peer.conn is not None and peer.conn.am_interested and not peer.tracker:
                self.update_interest(peer)

    def refresh_interest(self) -> None:
        for peer in list(self.active):
            self.update_interest(peer)
            self.fill(peer)

    def update_interest(self, peer: PeerTask) -> None:
        tr = self.task.transfer
        conn = peer.conn
        if tr is None or conn is None or peer.closed:
            return
        want = tr.picker.is_interesting(peer)
        if want and not conn.am_interested:
            peer.send_message(conn.send(m.Interested()))
        elif not want and conn.am_interested:
            peer.send_message(conn.send(m.NotInterested()))

    def resume_reading(self) -> None:
        if not self.task.rates.can_down(self.session.clock.now()):
            return  # the tick resumes once the rate limit allows
        for peer in self.active:
            if peer.read_paused:
                peer.resume_reading()

    # --- events ----------------------------------------------------------------------------------------------

    def on_event(self, peer: PeerTask, event: Any) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, peer, event)
        elif self.task.magnet is not None:
            self.task.magnet.on_event(peer, event)

    def _on_have(self, peer: PeerTask, event: ev.HaveReceived) -> None:
        tr = self.task.transfer
        if tr is None:
            return
        tr.picker.peer_have(peer, event.piece)
        bf = peer.conn.peer_bitfield if peer.conn is not None else None
        if bf is not None and bf.is_full:
            peer.is_seed = True
        conn = peer.conn
        if conn is not None and not conn.am_interested and not tr.picker.have(event.piece):
            self.update_interest(peer)
        self.fill(peer)

    def _on_bitfield(self, peer: PeerTask, event: ev.BitfieldReceived) -> None:
        tr = self.task.transfer
        if tr is None:
            return
        if self._apply_bitfield(peer, event.bitfield):
            self.update_interest(peer)
            self.fill(peer)

    def _apply_bitfield(self, peer: PeerTask, bf: Bitfield) -> bool:
        tr = self.task.transfer
        if tr is None:
            return False
        if bf.is_full:
            peer.is_seed = True
            tr.picker.peer_have_all(peer)
            if self.task.is_finished and self.task.state.value != "checking":
                self._leave_seed(peer)
                peer.close("both sides are seeds")
                return False
        else:
            tr.picker.peer_bitfield(peer, bf)
        return True

    def _on_allowed_fast(self, peer: PeerTask, event: ev.AllowedFastReceived) -> None:
        self.fill(peer)

    def _on_extension_handshake(self, peer: PeerTask, event: ev.ExtensionHandshaken) -> None:
        hs = event.handshake
        if hs.p:
            peer.listen_port = hs.p
            if not peer.initiator:  # an incoming peer we may redial later, and tell others about
                now = self.session.clock.now()
                self.book.on_connected(PeerAddr(peer.addr.host, hs.p), now, PeerSource.INCOMING)
        reqq = getattr(hs, "reqq", None)
        if reqq:
            peer.reqq = max(1, int(reqq))
        if self.task.magnet is not None:
            self.task.magnet.on_event(peer, event)

    def _on_dht_port(self, peer: PeerTask, event: ev.DhtPortReceived) -> None:
        dht = self.session.dht
        if dht is not None and 0 < event.port < 65536:
            dht.add_node(peer.addr.host, event.port)  # BEP 5: a peer's DHT node joins our routing table

    def _on_metadata_requested(self, peer: PeerTask, event: ev.MetadataRequested) -> None:
        conn = peer.conn
        if conn is not None and conn.peer_extension_id("ut_metadata") is not None:
            peer.send_message(conn.send_metadata(self.task.metadata_piece(event.piece)))

    def _on_pex(self, peer: PeerTask, event: ev.PexReceived) -> None:
        info = self.task.info
        if info is not None and info.private:
            return
        addrs = [PeerAddr(p.addr.host, p.addr.port) for p in event.added]
        self.add_candidates(addrs, "pex")

    # --- tick ------------------------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        if not self.active and not self.connecting:
            # No peer: nothing to rate, choke or tell (a session of a thousand idle seeds ticks 2,000 times a
            # second); only known peers whose back-off has run out are dialled.
            if len(self.book):
                self._connect_some(now)
            return
        s = self.settings
        t = self.task
        limit = t.rates.effective_download_limit()
        # seeding: no pipeline to size and nothing to time out, unless requests are still out (just finished)
        downloading = not t.is_finished
        upload_limited = t.rates.upload_limited()  # then served in turn below, not peer by peer
        for peer in list(self.active):
            tracker = peer.tracker
            if tracker is None or peer.closed:
                continue
            # rate estimates: an estimator with nothing left in its window is skipped (idle peers cost nothing)
            if peer.down_window or not peer.down_rate_est.idle:
                peer.down_rate_est.add(peer.down_window, now)
                peer.down_window = 0
                peer.down_rate = peer.down_rate_est.rate(now)
            if peer.up_window or not peer.up_rate_est.idle:
                peer.up_rate_est.add(peer.up_window, now)
                peer.up_window = 0
                peer.up_rate = peer.up_rate_est.rate(now)
            pipeline = downloading or bool(tracker)
            if pipeline:
                self._size_pipeline(peer, tracker, now, limit)
            if peer.read_paused and t.rates.can_down(now):
                tr = t.transfer
                if tr is None or tr.write_backlog_drained:
                    peer.resume_reading()
            if peer.upload_queue and not peer.write_paused and not upload_limited:
                self.serve(peer)
            if pipeline:
                self.fill(peer)
        if upload_limited:
            self.serve_in_turn(now)
        if self._last_choke is None or now - self._last_choke >= s.choke_interval:
            self.rechoke(now)
        elif self.slot_freed:
            self.fill_free_slots(now)
        self._send_pex(now)
        self._connect_some(now)

    def _size_pipeline(self, peer: PeerTask, tracker: RequestTracker, now: float, limit: int) -> None:
        """Snubbed or not, pipeline depth from the measured rate, stale requests cancelled (once per tick)."""
        s = self.settings
        peer.snubbed = tracker.snubbed(now)
        depth = pipeline_depth(
            peer.down_rate,
            request_queue_time=s.request_queue_time,
            min_requests=s.min_outstanding_requests,
            max_requests=s.max_outstanding_requests,
            peer_reqq=peer.reqq,
            snubbed=peer.snubbed,
        )
        if peer.slow_start and (peer.downloaded or peer.snubbed or limit):
            # Slow start ends once the rate estimate asks for at least the depth reached, or the rate stopped
            # growing (the peer is at its pace), or on a snub or a rate limit; until then the depth only grows.
            growing = peer.down_rate > 1.1 * peer.slow_start_rate
            peer.slow_start_rate = peer.down_rate
            if depth >= peer.depth or not growing or peer.snubbed or limit:
                peer.slow_start = False
            else:
                depth = peer.depth
        peer.depth = depth
        if not peer.snubbed:
            # Until the rate estimate has caught up (it starts at 0), keep a generous floor in flight.
            peer.depth = max(
                peer.depth, min(INITIAL_DEPTH, s.max_outstanding_requests, peer.reqq or INITIAL_DEPTH)
            )
        if limit:  # a rate limit: keep only about half a second of the allowed rate requested
            peer.depth = min(peer.depth, max(2, int(limit * 0.5 / BLOCK_SIZE)))
        self._expire_requests(peer, now)
        peer.starved = False

    def _send_pex(self, now: float) -> None:
        from shoal.engine.pex import broadcast as broadcast_pex  # ut_pex to each peer, rate-limited

        broadcast_pex(self, now)


# event type -> handler, one table for every torrent (a dict of bound methods per torrent cost ~1.5 KiB)
_HANDLERS: dict[type, Any] = {
    ev.PeerChoked: PeerSet._on_choked,
    ev.PeerUnchoked: PeerSet._on_unchoked,
    ev.PeerInterested: PeerSet._on_interested,
    ev.PeerNotInterested: PeerSet._on_not_interested,
    ev.HaveReceived: PeerSet._on_have,
    ev.BitfieldReceived: PeerSet._on_bitfield,
    ev.BlockRequested: PeerSet._on_requested,
    ev.BlocksRequested: PeerSet._on_requested_many,
    ev.RequestCancelled: PeerSet._on_cancelled,
    ev.Rejected: PeerSet._on_rejected,
    ev.AllowedFastReceived: PeerSet._on_allowed_fast,
    ev.ExtensionHandshaken: PeerSet._on_extension_handshake,
    ev.PexReceived: PeerSet._on_pex,
    ev.MetadataRequested: PeerSet._on_metadata_requested,
    ev.DhtPortReceived: PeerSet._on_dht_port,
}
