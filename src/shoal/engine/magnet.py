"""Metadata fetch for a torrent added from a magnet link (BEP 9), before it can start downloading.

Peers that announce ``metadata_size`` in their extended handshake are asked for 16 KiB metadata pieces through
the sans-IO :class:`~shoal.wire.metadata.MetadataFetcher` (a couple in flight per peer, several peers at once).
The assembled info dictionary is checked against the info-hash(es) of the magnet; a bad result bans the peers
that sent it and starts over. Once verified, the torrent continues exactly as if it had been added from a
.torrent file.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from shoal.engine import alerts as al
from shoal.errors import PeerProtocolError, ShoalError
from shoal.wire import events as ev
from shoal.wire.metadata import MetadataFetcher, MetadataRequest

if TYPE_CHECKING:
    from shoal.engine.peer import PeerTask
    from shoal.engine.torrent import TorrentTask

logger = logging.getLogger(__name__)

REQUESTS_PER_PEER = 2


class MetadataTask:
    def __init__(self, task: TorrentTask) -> None:
        self.task = task
        v1 = task.source.metainfo.info_hash_v1 if task.source.metainfo is not None else None
        link = task.source.magnet
        self.v1 = link.info_hash_v1 if link is not None else v1
        self.v2 = link.info_hash_v2 if link is not None else task.source.info_hash_v2
        self.fetcher = MetadataFetcher(task.info_hash, task.settings.max_metadata_size, verify=self._verify)
        self._asked: dict[Hashable, int] = {}
        self._size_from: PeerTask | None = None  # the peer whose metadata_size the fetcher uses
        self.done = False

    def _verify(self, info: bytes) -> bool:
        if self.v1 is not None and hashlib.sha1(info).digest() != self.v1:
            return False
        if self.v2 is not None and hashlib.sha256(info).digest() != self.v2:
            return False
        return self.v1 is not None or self.v2 is not None

    @property
    def pieces_received(self) -> int:
        return self.fetcher.received

    def on_event(self, peer: PeerTask, event: Any) -> None:
        if self.done:
            return
        if isinstance(event, ev.ExtensionHandshaken):
            size = event.handshake.metadata_size
            if size:
                fresh = self.fetcher.total_size is None
                if self.fetcher.set_size(size, peer):
                    if fresh:
                        self._size_from = peer
                    self._request(peer)
        elif isinstance(event, ev.MetadataPieceReceived):
            self._asked[peer] = max(0, self._asked.get(peer, 0) - 1)
            try:
                result = self.fetcher.on_data(peer, event.piece, event.total_size, event.data)
            except PeerProtocolError as exc:
                peer.close(str(exc))
                if self._size_from is peer:
                    self._restart()  # the size we fetch by came from this liar: start over with the others
                return
            if result is None:
                self._request(peer)
            elif result.info is not None:
                self._finished(result.info)
            else:
                for who in result.contributors:
                    self.task.peers.ban(getattr(who, "addr", who), "sent bad metadata")
                self._asked.clear()
                for other in list(self.task.peers.active):  # start over with everyone still connected
                    self._adopt_size(other)
                    self._request(other)
        elif isinstance(event, ev.MetadataRejected):
            self._asked[peer] = max(0, self._asked.get(peer, 0) - 1)
            self.fetcher.on_reject(peer, event.piece)

    def _restart(self) -> None:
        """Forget everything fetched so far (and the metadata size in use), then ask the peers still here."""
        self.fetcher = MetadataFetcher(
            self.task.info_hash, self.task.settings.max_metadata_size, verify=self._verify
        )
        self._asked.clear()
        self._size_from = None
        for other in list(self.task.peers.active):
            if not other.closed:
                self._adopt_size(other)
                self._request(other)

    def _request(self, peer: PeerTask) -> None:
        conn = peer.conn
        if conn is None or peer.closed or conn.peer_extension_id("ut_metadata") is None:
            return
        now = self.task.session.clock.now()
        while self._asked.get(peer, 0) < REQUESTS_PER_PEER:
            index = self.fetcher.next_request(peer, now)
            if index is None:
                break
            self._asked[peer] = self._asked.get(peer, 0) + 1
            peer.send_message(conn.send_metadata(MetadataRequest(index)))

    def tick(self, now: float) -> None:
        for peer in list(self.task.peers.active):
            self._adopt_size(peer)
            self._request(peer)

    def _adopt_size(self, peer: PeerTask) -> None:
        """Take the peer's metadata_size (from its extended handshake) when the fetcher has none, e.g. after a
        poisoned result reset it: peers connected before then are asked again, not only new ones."""
        conn = peer.conn
        if self.fetcher.total_size is None and conn is not None and not peer.closed:
            size = conn.peer_extensions.metadata_size
            if size and self.fetcher.set_size(size, peer):
                self._size_from = peer

    def peer_lost(self, peer: PeerTask) -> None:
        self.fetcher.peer_lost(peer)
        self._asked.pop(peer, None)
        if self._size_from is peer and not self.done and self.fetcher.received == 0:
            self._restart()  # nothing fetched yet with its size: let the others' sizes count

    def _finished(self, raw: bytes) -> None:
        self.done = True
        t = self.task
        link = t.source.magnet
        try:
            if link is not None:
                meta = link.with_info(raw, t.settings)
            else:  # pragma: no cover - a magnet task always has its link
                from shoal.codec.metainfo import InfoDict, Metainfo

                info = InfoDict.from_bytes(raw, t.settings)
                meta = Metainfo(info=info, info_hash_v1=info.info_hash_v1, info_hash_v2=info.info_hash_v2)
        except ShoalError as exc:
            t.fail(exc)
            return
        t.source.metainfo = meta
        t.session.post(al.MetadataReceived(t.info_hash, meta.name))
        t.spawn(t.setup(meta.info))
