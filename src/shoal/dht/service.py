"""DhtService: the asyncio adapter that drives a :class:`DhtNode` over real UDP sockets.

The aioquic ``protocol.py`` shape: every datagram (and every API call) goes into the node, then ``_pump`` sends
what the node wants sent, hands events to waiting lookups, and re-arms one ``loop.call_at`` timer from
``node.get_timer()``. The node's clock is ``loop.time()``.

Start-up: bind UDP (IPv4, and IPv6 when ``host6`` is given), load our node id and the nodes saved at the last
run from SQLite (``db_path``), then bootstrap from the saved nodes and the configured routers. Shut-down saves
the good nodes again. The session uses :meth:`get_peers`, :meth:`iter_peers` and :meth:`announce`; ``shoal get
-v`` and ``shoal dht`` read :meth:`stats`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import aclosing
from pathlib import Path
from typing import Any

from shoal.config import Settings
from shoal.dht.events import DhtStats, LookupFinished, PeersFound
from shoal.dht.node import DhtNode, family_of
from shoal.dht.node_id import bep42_id, bep42_valid, is_local_ip
from shoal.dht.persist import NodesDb
from shoal.errors import ConfigError, NetworkError
from shoal.types import PeerAddr

logger = logging.getLogger(__name__)

Addr = tuple[str, int]


def parse_host_port(text: str) -> Addr:
    """``host:port`` or ``[v6]:port`` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ConfigError(f"bad node address {text!r}: expected host:port")
    return host.strip("[]"), int(port)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, service: DhtService) -> None:
        self.service = service

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.service._datagram_received(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        logger.debug("dht: socket error %s", exc)


class _Waiter:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[PeersFound | LookupFinished] = asyncio.Queue()


class DhtService:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        host: str = "0.0.0.0",
        port: int | None = None,
        host6: str | None = None,
        routers: Iterable[str] | None = None,
        db_path: str | Path | None = None,
        rng: random.Random | None = None,
        node_id: bytes | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.host = host
        self.requested_port = self.settings.dht_port if port is None else port
        self.host6 = host6
        self.routers = list(self.settings.dht_routers if routers is None else routers)
        self.db_path = db_path
        self.rng = rng or random.SystemRandom()
        self._node_id = node_id
        self.node: DhtNode | None = None
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: dict[int, _Waiter] = {}
        self._db: NodesDb | None = None
        self._lookup_slots = asyncio.Semaphore(max(1, self.settings.dht_max_lookups // 2))
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> DhtService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        router_addrs = [parse_host_port(text) for text in self.routers]  # bad input fails before binding
        saved: list[tuple[bytes, str, int]] = []
        if self.db_path is not None:
            self._db = NodesDb(self.db_path)
            if self._node_id is None:
                self._node_id = self._choose_node_id(self._db)
            saved = self._db.load_nodes(self.settings.dht_bucket_size * 20)
        self.node = DhtNode(self.settings, self.rng, loop.time(), node_id=self._node_id)
        if self._db is not None:
            self._db.save_node_id(self.node.node_id)
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=(self.host, self.requested_port), family=socket.AF_INET
            )
            self._transports[4] = transport
            self.port = transport.get_extra_info("sockname")[1]
            if self.host6 is not None:
                transport6, _ = await loop.create_datagram_endpoint(
                    lambda: _Protocol(self), local_addr=(self.host6, self.port), family=socket.AF_INET6
                )
                self._transports[6] = transport6
        except OSError as exc:
            await self.close()
            raise NetworkError(
                f"cannot bind dht socket on {self.host}:{self.requested_port}: {exc}"
            ) from None
        seeds = [(h, p) for _, h, p in saved if family_of(h) in self._transports]
        seeds += await self._resolve(router_addrs)
        if seeds:
            self.node.bootstrap(seeds, loop.time())
        self._pump()
        logger.info("dht: node %s listening on udp port %d", self.node.node_id.hex()[:8], self.port)

    def _choose_node_id(self, db: NodesDb) -> bytes | None:
        """The saved id, unless the external IP voted at the last run says it breaks BEP 42: then a new id
        derived from that IP (a public address only; local ones are exempt)."""
        saved = db.load_node_id()
        external = db.load_external_ip()
        if external is None or is_local_ip(external):
            return saved
        try:
            if saved is not None and bep42_valid(saved, external):
                return saved
            logger.info("dht: new BEP 42 node id for external address %s", external)
            return bep42_id(external, self.rng)
        except ValueError:
            return saved

    async def _resolve(self, routers: Iterable[Addr]) -> list[Addr]:
        """Router addresses, for every family we have a socket for."""
        loop = asyncio.get_running_loop()
        out: list[Addr] = []
        families = [
            (fam, af) for fam, af in ((4, socket.AF_INET), (6, socket.AF_INET6)) if fam in self._transports
        ]
        for host, port in routers:
            for fam, af in families:
                if _literal_family(host) not in (None, fam):
                    continue  # an address literal of the other family
                try:
                    infos = await asyncio.wait_for(
                        loop.getaddrinfo(host, port, family=af, type=socket.SOCK_DGRAM), 10
                    )
                except (OSError, TimeoutError) as exc:
                    logger.info("dht: cannot resolve router %s:%d for ipv%d: %s", host, port, fam, exc)
                    continue
                out.extend((str(info[4][0]), int(info[4][1])) for info in infos[:1])
        return out

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()
        if self._db is not None:
            if self.node is not None:
                votes = self.node.external_ip_votes.most_common(1)
                if votes and votes[0][1] >= self.settings.dht_external_ip_min_votes:
                    self._db.save_external_ip(votes[0][0])
                self._db.save_nodes(
                    (n.node_id, n.host, n.port, n.last_seen)
                    for n in self.node.known_nodes()
                    if n.last_response is not None
                )
            self._db.close()
            self._db = None
        for waiter in self._waiters.values():
            waiter.queue.put_nowait(_closed())

    # ------------------------------------------------------------------ the pump

    def _datagram_received(self, data: bytes, addr: Addr) -> None:
        if self.node is None:
            return
        self.node.receive_datagram(data, addr, asyncio.get_running_loop().time())
        self._pump()

    def _on_timer(self) -> None:
        self._timer = None
        if self.node is None:
            return
        self.node.handle_timer(asyncio.get_running_loop().time())
        self._pump()

    def _pump(self) -> None:
        node = self.node
        if node is None or not self._transports:
            return
        loop = asyncio.get_running_loop()
        for data, addr in node.datagrams_to_send(loop.time()):
            transport = self._transports.get(family_of(addr[0]))
            if transport is not None:
                transport.sendto(data, addr)
        while (event := node.next_event()) is not None:
            if isinstance(event, PeersFound | LookupFinished):
                waiter = self._waiters.get(event.lookup_id)
                if waiter is not None:
                    waiter.queue.put_nowait(event)
        when = node.get_timer()
        if self._timer is not None and (when is None or self._timer.when() != when):
            self._timer.cancel()
            self._timer = None
        if when is not None and self._timer is None:
            self._timer = loop.call_at(when, self._on_timer)

    # ------------------------------------------------------------------ API for the session and the CLI

    def _require_node(self) -> DhtNode:
        if self.node is None:
            raise NetworkError("dht service is not started")
        return self.node

    def add_node(self, host: str, port: int) -> None:
        node = self._require_node()
        node.add_node((host, port), asyncio.get_running_loop().time())
        self._pump()

    async def _run_lookup(
        self, kind: str, target: bytes, **kw: Any
    ) -> AsyncGenerator[PeersFound | LookupFinished, None]:
        """Events of one lookup per bound address family (BEP 32), ending with one merged LookupFinished.
        Callers wrap it in ``aclosing``."""
        node = self._require_node()
        async with self._lookup_slots:
            now = asyncio.get_running_loop().time()
            waiter = _Waiter()
            ids: list[int] = []
            try:
                for family in sorted(self._transports):
                    if kind == "get_peers":
                        ids.append(node.get_peers(target, now, family=family, **kw))
                    elif kind == "sample_infohashes":
                        ids.append(node.sample_infohashes(target, now, family=family))
                    else:
                        ids.append(node.find_node(target, now, family=family))
                    self._waiters[ids[-1]] = waiter
                self._pump()
                finished: list[LookupFinished] = []
                while len(finished) < len(ids):
                    event = await waiter.queue.get()
                    if isinstance(event, PeersFound):
                        yield event
                    elif event.lookup_id < 0:  # the service closed
                        yield event
                        return
                    else:
                        finished.append(event)
                yield _merge(finished) if finished else _closed()
            finally:
                for lookup_id in ids:
                    self._waiters.pop(lookup_id, None)

    async def _finished(self, kind: str, target: bytes, **kw: Any) -> LookupFinished:
        async with aclosing(self._run_lookup(kind, target, **kw)) as events:
            async for event in events:
                if isinstance(event, LookupFinished):
                    if event.lookup_id < 0:
                        raise NetworkError("dht service closed during a lookup")
                    return event
        raise NetworkError("dht lookup ended without a result")

    async def iter_peers(
        self, info_hash: bytes, *, announce_port: int | None = None, implied_port: bool = False
    ) -> AsyncIterator[list[PeerAddr]]:
        """Batches of peers as the get_peers lookup finds them (ends when the lookup converges)."""
        events = self._run_lookup(
            "get_peers", info_hash, announce_port=announce_port, implied_port=implied_port
        )
        async with aclosing(events):
            async for event in events:
                if isinstance(event, PeersFound):
                    yield list(event.peers)

    async def get_peers(
        self, info_hash: bytes, *, announce_port: int | None = None, implied_port: bool = False
    ) -> list[PeerAddr]:
        """All peers one get_peers lookup finds (optionally announcing ourselves on ``announce_port``)."""
        done = await self._finished(
            "get_peers", info_hash, announce_port=announce_port, implied_port=implied_port
        )
        return list(done.peers)

    async def announce(self, info_hash: bytes, port: int, *, implied_port: bool = False) -> LookupFinished:
        """get_peers then announce_peer to the closest nodes that gave a token; returns the finished lookup."""
        return await self._finished("get_peers", info_hash, announce_port=port, implied_port=implied_port)

    async def find_node(self, target: bytes) -> LookupFinished:
        return await self._finished("find_node", target)

    async def sample_infohashes(self, target: bytes) -> LookupFinished:
        return await self._finished("sample_infohashes", target)

    def stats(self) -> DhtStats:
        return self._require_node().stats()


def _closed() -> LookupFinished:
    return LookupFinished(-1, "closed", b"", (), (), (), 0, 0, 0, 0)


def _merge(parts: list[LookupFinished]) -> LookupFinished:
    """One result from the per-family lookups of one request."""
    first = parts[0]
    if len(parts) == 1:
        return first
    return LookupFinished(
        first.lookup_id,
        first.kind,
        first.target,
        tuple(n for p in parts for n in p.nodes),
        tuple(dict.fromkeys(peer for p in parts for peer in p.peers)),
        tuple(sorted({x for p in parts for x in p.samples})),
        sum(p.queries for p in parts),
        sum(p.responses for p in parts),
        max(p.hops for p in parts),
        sum(p.announced_to for p in parts),
    )


def _literal_family(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None  # a host name
