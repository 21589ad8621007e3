"""Acceptance 3 (issue 4): libtorrent's DHT accepts Shoal's node, and Shoal's node uses theirs.

A small DHT on 127.0.0.1: three libtorrent sessions (configured as PEERS.md says: no bootstrap routers, no IP
restrictions, nodes added with ``add_dht_node``) and one Shoal :class:`DhtService` bootstrapped from them.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from peers import require_libtorrent
from shoal.config import Settings
from shoal.dht import krpc
from shoal.dht.krpc import Query, Response
from shoal.dht.service import DhtService
from shoal.types import PeerAddr

pytestmark = pytest.mark.interop

LT_SETTINGS = {
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": True,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_outgoing_utp": False,
    "enable_incoming_utp": False,
    "dht_bootstrap_nodes": "",
    "dht_restrict_routing_ips": False,
    "dht_restrict_search_ips": False,
    "dht_enforce_node_id": False,
    "dht_prefer_verified_node_ids": False,
}


@pytest.fixture
def lt_sessions() -> Iterator[list[Any]]:
    lt = require_libtorrent()
    sessions = [lt.session(dict(LT_SETTINGS, alert_mask=lt.alert_category.all)) for _ in range(3)]
    try:
        yield sessions
    finally:
        for s in sessions:
            s.pause()
        sessions.clear()


async def poll(pred: Any, timeout: float, what: str) -> None:
    async def loop() -> None:
        while not pred():
            await asyncio.sleep(0.1)

    try:
        await asyncio.wait_for(loop(), timeout)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout} s waiting for {what}")


def lt_alerts(session: Any, kind: Any) -> list[Any]:
    return [a for a in session.pop_alerts() if isinstance(a, kind)]


async def ask_find_node(port: int, target: bytes) -> Response:
    """A raw find_node to a libtorrent node (from a throwaway socket), to read its routing table."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        sock.bind(("127.0.0.1", 0))
        q = Query(b"zz", "find_node", random.Random(9).randbytes(20), target=target)
        await loop.sock_sendto(sock, krpc.encode_query(q), ("127.0.0.1", port))
        data = await asyncio.wait_for(loop.sock_recv(sock, 2048), 5)
    finally:
        sock.close()
    reply = krpc.decode(data)
    assert isinstance(reply, Response)
    return reply


async def test_libtorrent_dht_accepts_shoal_node(lt_sessions: list[Any]) -> None:
    lt = require_libtorrent()
    ports = [s.listen_port() for s in lt_sessions]
    settings = Settings().with_(dht_allow_same_ip=True, dht_queries_per_ip_per_second=0.0)
    svc = DhtService(settings, host="127.0.0.1", port=0, routers=[f"127.0.0.1:{p}" for p in ports])
    await svc.start()
    try:
        for s in lt_sessions:
            for p in [*ports, svc.port]:
                if p != s.listen_port():
                    s.add_dht_node(("127.0.0.1", p))

        # our node learns all three libtorrent nodes, and they query us
        await poll(lambda: svc.stats().nodes4 >= 3, 30, "shoal to know the 3 libtorrent nodes")
        await poll(lambda: svc.stats().queries_received >= 3, 30, "libtorrent to query shoal")

        # each libtorrent routing table holds the 2 other libtorrent nodes and ours
        def tables_full() -> bool:
            counts = []
            for s in lt_sessions:
                s.post_dht_stats()
            for s in lt_sessions:
                stats = lt_alerts(s, lt.dht_stats_alert)
                counts.append(sum(b["num_nodes"] for b in stats[-1].routing_table) if stats else 0)
            return all(c >= 3 for c in counts)

        await poll(tables_full, 30, "libtorrent routing tables to hold 3 nodes")
        # and the entry really is ours: a find_node for our id returns our id and port
        own = svc.stats().node_id
        for port in ports:
            reply = await ask_find_node(port, own)
            assert (own, PeerAddr("127.0.0.1", svc.port)) in [(n.node_id, n.addr) for n in reply.nodes]

        # libtorrent announces; shoal's get_peers finds it
        ih = bytes(range(20))
        lt_sessions[0].dht_announce(lt.sha1_hash(ih), 5555, 0)
        found: list[PeerAddr] = []

        async def lt_peer_found() -> bool:
            found[:] = await asyncio.wait_for(svc.get_peers(ih), 20)
            return PeerAddr("127.0.0.1", 5555) in found

        for _ in range(20):
            if await lt_peer_found():
                break
            await asyncio.sleep(0.5)
        assert PeerAddr("127.0.0.1", 5555) in found

        # shoal announces; libtorrent's get_peers finds it
        ih2 = bytes(range(1, 21))
        done = await asyncio.wait_for(svc.announce(ih2, 4444), 20)
        assert done.announced_to >= 1
        got: set[tuple[str, int]] = set()

        def lt_found() -> bool:
            for a in lt_alerts(lt_sessions[2], lt.dht_get_peers_reply_alert):
                got.update(a.peers())
            return ("127.0.0.1", 4444) in got

        lt_sessions[2].dht_get_peers(lt.sha1_hash(ih2))
        await poll(lt_found, 20, "libtorrent to find the peer shoal announced")
    finally:
        await svc.close()
