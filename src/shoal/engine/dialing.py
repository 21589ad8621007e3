"""Which peers a torrent dials and which it lets in: candidates from every source, back-off, per-IP and session
limits, bans by address. Mixed into :class:`~shoal.engine.peers.PeerSet`.

Known peers, back-off and bans live in the set's :class:`~shoal.policy.peer_book.PeerBook`; this mixin decides when
to dial (``_connect_some``: room under the torrent's, the session's and the half-open limits) and whether an
incoming connection may stay (``refuse_incoming``).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from shoal.errors import NetworkError
from shoal.policy.peer_book import PeerBook, PeerSource
from shoal.types import PeerAddr

if TYPE_CHECKING:
    from shoal.config import Settings
    from shoal.engine.peer import PeerTask
    from shoal.engine.session import Session
    from shoal.engine.torrent import TorrentTask

logger = logging.getLogger(__name__)


def ban_key(addr: PeerAddr | str) -> str:
    """Peers are banned by IP; on loopback (tests, demos) by IP and port, since every peer shares the IP."""
    if isinstance(addr, str):
        return addr
    try:
        if ipaddress.ip_address(addr.host).is_loopback:
            return f"{addr.host}:{addr.port}"
    except ValueError:
        pass
    return addr.host


SOURCES = {
    "tracker": PeerSource.TRACKER,
    "incoming": PeerSource.INCOMING,
    "pex": PeerSource.PEX,
    "dht": PeerSource.DHT,
    "lsd": PeerSource.LSD,
    "resume": PeerSource.RESUME,
}


class DialMixin:
    task: TorrentTask
    session: Session
    settings: Settings
    active: list[PeerTask]
    by_addr: dict[PeerAddr, PeerTask]
    connecting: set[PeerAddr]
    book: PeerBook

    def is_banned(self, addr: PeerAddr) -> bool:
        return self.book.is_banned(ban_key(addr)) or self.book.is_banned(addr.host)

    # --- candidates and connecting ---------------------------------------------------------------------------

    def add_candidates(self, addrs: Iterable[PeerAddr], source: str) -> None:
        own = set(self.session.listen_addresses)
        now = self.session.clock.now()
        kind = SOURCES.get(source, PeerSource.TRACKER)
        for addr in addrs:
            addr = PeerAddr(addr.host, addr.port)
            if addr in own or self.is_banned(addr):
                continue
            self.book.add(addr, kind, now)
        self._connect_some(now)

    def reachable_addresses(self) -> list[PeerAddr]:
        """Where our current peers can be dialed: outgoing ones at their address, incoming at their listen port."""
        return [a for a in map(self.dial_address, self.active) if a is not None]

    @staticmethod
    def dial_address(peer: PeerTask) -> PeerAddr | None:
        """Where a peer can be dialed: an outgoing one at its address, an incoming one at its listen port."""
        if peer.initiator:
            return peer.addr
        return PeerAddr(peer.addr.host, peer.listen_port) if peer.listen_port else None

    def redial(self, addrs: Iterable[PeerAddr]) -> None:
        """Make these known peers candidates again right now (after a pause), then connect."""
        now = self.session.clock.now()
        for addr in addrs:
            entry = self.book.get(addr)
            source = entry.source if entry is not None else PeerSource.TRACKER
            self.book.remove(addr)
            self.book.add(addr, source, now)
        self._connect_some(now)

    def _connect_some(self, now: float) -> None:
        t = self.task
        if t.paused or t.stopping or t.state.value in ("error", "stopped"):
            return
        if t.is_finished and (not t.params.seed or t.state.value == "finished"):
            return
        room = self.settings.max_peers_per_torrent - len(self.active) - len(self.connecting)
        room = min(room, self.settings.max_half_open - self.session.half_open)
        room = min(room, self.settings.max_peers_global - self.session.connections - self.session.half_open)
        for addr in self.book.candidates(now, room):
            if (
                addr in self.by_addr
                or self.is_banned(addr)
                or self._per_ip(addr.host) >= self.settings.max_connections_per_ip
            ):
                self.book.on_connect_failed(addr, now)
                continue
            self.connecting.add(addr)
            self.session.half_open += 1
            t.spawn(self._connect(addr))

    async def _connect(self, addr: PeerAddr) -> None:
        s = self.session
        try:
            await s.network.open_tcp(
                addr,
                lambda: self._new_outgoing(addr),
                timeout=self.settings.peer_connect_timeout,
            )
        except NetworkError as exc:
            logger.debug("connect %s:%d failed: %s", addr.host, addr.port, exc)
            self.book.on_connect_failed(addr, s.clock.now())
        finally:
            self.connecting.discard(addr)
            s.half_open -= 1

    def _new_outgoing(self, addr: PeerAddr) -> Any:
        from shoal.engine.peer import PeerTask

        return PeerTask(self.session, self.task, addr, initiator=True)

    def refuse_incoming(self, peer: PeerTask) -> str | None:
        t = self.task
        if t.paused or t.stopping or t.state.value in ("error", "stopped"):
            return "torrent not active"
        if self.is_banned(peer.addr):
            return "banned"
        if t.is_finished and (not t.params.seed or t.state.value == "finished"):
            return "not seeding"
        if len(self.active) >= self.settings.max_peers_per_torrent:
            return "too many peers"
        if self.session.connections >= self.settings.max_peers_global:
            return "too many peers in session"
        if self._per_ip(peer.addr.host) >= self.settings.max_connections_per_ip:
            return "too many connections from one address"
        return None

    def _per_ip(self, host: str) -> int:
        return sum(1 for p in self.active if p.addr.host == host) + sum(
            1 for a in self.connecting if a.host == host
        )
