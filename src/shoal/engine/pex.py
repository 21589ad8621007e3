"""Sending ut_pex (BEP 11): tell each connected peer about the others, at most once per ``pex_interval``.

The wire layer has the codec and the per-peer delta/rate-limit logic (:class:`shoal.wire.pex.PexSender`); this
module only chooses what to advertise. A peer is advertised by its *listen* address: the address we dialled,
or for an incoming connection the port from its extended handshake (``p``); peers whose listen port we do not
know are left out. Flags: 0x02 seed, 0x10 reachable (we connected to it). Private torrents (BEP 27) send none.

Called from :meth:`shoal.engine.peers.PeerSet.tick`; the per-peer state lives here, keyed weakly by peer.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from shoal.errors import LocalProtocolError
from shoal.types import PeerAddr
from shoal.wire.extension import UT_PEX
from shoal.wire.pex import PexPeer, PexSender

if TYPE_CHECKING:
    from shoal.engine.peer import PeerTask
    from shoal.engine.peers import PeerSet

FLAG_SEED = 0x02
FLAG_REACHABLE = 0x10

_senders: weakref.WeakKeyDictionary[PeerTask, PexSender] = weakref.WeakKeyDictionary()
# The torrent's advertised peers as last worked out (the same list object while it does not change), and for each
# peer the list in which its sender last found nothing new: a stable swarm costs O(peers) per tick, not O(peers^2).
_advert: weakref.WeakKeyDictionary[PeerSet, list[tuple[PeerTask, PexPeer]]] = weakref.WeakKeyDictionary()
_checked: weakref.WeakKeyDictionary[PeerTask, list[tuple[PeerTask, PexPeer]]] = weakref.WeakKeyDictionary()


def listen_addr(peer: PeerTask) -> PeerAddr | None:
    if peer.initiator:
        return peer.addr
    conn = peer.conn
    port = conn.peer_extensions.p if conn is not None else None
    if port and 0 < port < 65536 and peer.addr.host != "?":
        return PeerAddr(peer.addr.host, port)
    return None


def broadcast(peers: PeerSet, now: float) -> None:
    from shoal.engine.discovery import is_private

    if is_private(peers.task):
        return
    s = peers.settings
    current: list[tuple[PeerTask, PexPeer]] | None = None  # worked out once a peer is due a message
    for peer in peers.active:
        conn = peer.conn
        if conn is None or peer.closed or conn.peer_extension_id(UT_PEX) is None:
            continue
        sender = _senders.get(peer)
        if sender is None:
            sender = _senders[peer] = PexSender(interval=s.pex_interval, max_peers=s.max_pex_peers)
        if not sender.due(now):
            continue
        if current is None:
            current = _advertised(peers)
        if _checked.get(peer) is current:
            continue
        payload = sender.update([p for other, p in current if other is not peer], now)
        if payload is None:
            _checked[peer] = current
        if payload is not None:
            try:
                peer.send_message(conn.send_pex(payload))
            except LocalProtocolError:  # the connection closed under us; the next tick forgets it
                continue


def _advertised(peers: PeerSet) -> list[tuple[PeerTask, PexPeer]]:
    out: list[tuple[PeerTask, PexPeer]] = []
    for peer in peers.active:
        addr = listen_addr(peer)
        if addr is not None and not peer.closed:
            flags = (FLAG_SEED if peer.is_seed else 0) | (FLAG_REACHABLE if peer.initiator else 0)
            out.append((peer, PexPeer(addr, flags)))
    last = _advert.get(peers)
    if last is not None and last == out:
        return last
    _advert[peers] = out
    return out
