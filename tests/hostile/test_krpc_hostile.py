"""Acceptance 5 (issue 4): hostile KRPC input gets an error reply or is dropped, and the node's tables stay
within their bounds under floods (RELIABILITY cases 28-33)."""

from __future__ import annotations

import random

import pytest

from shoal.codec import bencode
from shoal.config import Settings
from shoal.dht import krpc
from shoal.dht.krpc import Error, Query, Response
from shoal.dht.node import DhtNode
from shoal.types import PeerAddr

IH = bytes(range(20))


def make_node(**changes: object) -> DhtNode:
    return DhtNode(Settings().with_(**changes), random.Random(7), 0.0)


def send(node: DhtNode, data: bytes, addr: tuple[str, int], now: float = 1.0) -> list[bytes]:
    node.receive_datagram(data, addr, now)
    return [d for d, _ in node.datagrams_to_send(now)]


def ip(i: int) -> str:
    return f"11.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (b"d1:ti", None),  # truncated bencode
        (b"i42e", None),  # not a dictionary
        (b"d1:t" + b"1024:" + b"x" * 1024 + b"1:y1:qe", None),  # 1 KiB transaction id
        (bencode.encode({b"t": b"aa", b"y": b"q", b"q": b"ping", b"a": {b"id": 10**30}}), 203),
        (bencode.encode({b"t": b"aa", b"y": b"q", b"q": b"ping", b"a": {b"id": b"x" * 19}}), 203),
        (bencode.encode({b"t": b"aa", b"y": b"q", b"q": b"ping", b"a": [b"id"]}), 203),
        (bencode.encode({b"t": b"aa", b"y": b"q", b"q": b"rm_rf", b"a": {b"id": b"x" * 20}}), 204),
        (bencode.encode({b"t": b"aa", b"y": b"q", b"q": b"x" * 900, b"a": {b"id": b"x" * 20}}), 204),
        (
            bencode.encode(
                {
                    b"t": b"aa",
                    b"y": b"q",
                    b"q": b"announce_peer",
                    b"a": {b"id": b"x" * 20, b"info_hash": IH, b"port": 10**40, b"token": b"t"},
                }
            ),
            203,
        ),
        (bencode.encode({b"t": b"aa", b"y": b"r", b"r": {b"id": b"x" * 20, b"nodes": b"n" * 25}}), None),
        (bencode.encode({b"t": b"aa", b"y": b"e", b"e": {b"x": 1}}), None),
        (b"d" * 2000, None),  # bigger than any datagram we accept
        (b"l" * 100 + b"e" * 100, None),  # deep nesting
    ],
)
def test_malformed_input_gets_an_error_or_nothing(data: bytes, reply: int | None) -> None:
    node = make_node()
    out = send(node, data, ("11.0.0.1", 1000))
    if reply is None:
        assert out == []
    else:
        (raw,) = out
        err = krpc.decode(raw)
        assert isinstance(err, Error) and err.code == reply
        assert len(raw) <= 10 * len(data)
    assert len(node.tables[4]) == 0


def test_flood_of_distinct_node_ids_keeps_tables_bounded() -> None:
    node = make_node(dht_upload_rate_limit=0)  # every query answered: the table, not the cap, is under test
    rng = random.Random(1)
    for i in range(30_000):
        q = Query(b"t" + i.to_bytes(3, "big"), "ping", rng.randbytes(20))
        assert len(send(node, krpc.encode(q), (ip(i), 6881), now=i * 0.001)) == 1
    table = node.tables[4]
    assert all(len(b.nodes) <= 8 and len(b.replacements) <= 8 for b in table.buckets)
    assert len(table.buckets) <= 24
    assert len(table) + table.replacement_count() <= 16 * len(table.buckets)
    assert node.limiter.tracked() <= node.settings.dht_rate_limit_tracked_ips


def test_spoofed_ids_from_one_ip_hold_one_slot_and_get_rate_limited() -> None:
    node = make_node()
    rng = random.Random(2)
    replies = 0
    for i in range(1000):  # 1000 queries in 10 s from one IP, each with a fresh id
        q = Query(b"t" + i.to_bytes(2, "big"), "ping", rng.randbytes(20))
        replies += len(send(node, krpc.encode(q), ("12.0.0.1", 6881), now=i * 0.01))
    assert len(node.tables[4]) == 1
    limit = node.settings.dht_queries_per_ip_per_second * node.settings.dht_rate_limit_window
    assert replies == limit  # then the IP is ignored
    assert node.stats().ips_blocked == 1
    # another IP is still served
    assert (
        len(send(node, krpc.encode(Query(b"zz", "ping", rng.randbytes(20))), ("12.0.0.2", 1), now=10.0)) == 1
    )


def test_global_upload_cap_one_past() -> None:
    """Case 29: replies to everyone together stay within dht_upload_rate_limit bytes per second."""
    node = make_node()
    rng = random.Random(4)
    sent = 0
    for i in range(2000):  # 2000 pings from 2000 IPs within one second
        q = Query(b"t" + i.to_bytes(2, "big"), "ping", rng.randbytes(20))
        sent += sum(len(d) for d in send(node, krpc.encode(q), (ip(i), 1), now=1.0 + i / 2000))
    cap = node.settings.dht_upload_rate_limit
    assert cap - 100 < sent <= 2 * cap  # a burst of one second plus one second of refill
    assert node.counters["replies_suppressed"] > 0
    later = krpc.encode(Query(b"zz", "ping", rng.randbytes(20)))
    assert len(send(node, later, ("18.0.0.1", 1), now=10.0)) == 1  # the budget refills


def test_response_from_another_address_is_ignored() -> None:
    node = make_node()
    node.add_node(("13.0.0.1", 6881), 0.0)
    ((query_bytes, _),) = node.datagrams_to_send(0.0)
    q = krpc.decode(query_bytes)
    assert isinstance(q, Query)
    forged = krpc.encode(Response(q.tid, b"F" * 20))
    assert send(node, forged, ("13.0.0.2", 6881)) == []
    assert len(node.tables[4]) == 0
    send(node, forged, ("13.0.0.1", 6881))
    assert len(node.tables[4]) == 1


def test_storage_caps_under_announce_floods() -> None:
    node = make_node(dht_queries_per_ip_per_second=0.0, dht_upload_rate_limit=0)
    s = node.settings

    def announce(info_hash: bytes, addr: tuple[str, int]) -> None:
        (raw,) = send(node, krpc.encode(Query(b"g", "get_peers", b"Q" * 20, info_hash=info_hash)), addr)
        r = krpc.decode(raw)
        assert isinstance(r, Response) and r.token
        q = Query(b"a", "announce_peer", b"Q" * 20, info_hash=info_hash, port=6881, token=r.token)
        (ok,) = send(node, krpc.encode(q), addr)
        assert isinstance(krpc.decode(ok), Response)

    for i in range(s.dht_max_infohashes + 1):
        announce(i.to_bytes(20, "big"), ("14.0.0.1", 6881))
    assert node.store.infohash_count() == s.dht_max_infohashes
    for i in range(s.dht_max_peers_per_infohash + 1):
        announce(IH, (ip(i), 6881))
    assert len(node.store.get(IH, 1.0, 10**6, random.Random(1))) == s.dht_max_peers_per_infohash
    assert len(node.store) <= s.dht_max_stored_peers


@pytest.mark.parametrize("want", [frozenset(), frozenset({"n4", "n6"})])
def test_amplification_ratio_measured(want: frozenset[str]) -> None:
    """Case 30: the worst reply we can be made to send, for each query type, against the query's size."""
    node = make_node()
    rng = random.Random(3)
    for i in range(400):
        node.tables[4].heard_from(rng.randbytes(20), ip(i), 6881, 0.0, responded=True)
        node.tables[6].heard_from(rng.randbytes(20), f"2001:db8:{i:x}::1", 6881, 0.0, responded=True)
    for i in range(500):
        node.store.announce(IH, PeerAddr(ip(i), 6881), 0.0)
        node.store.announce(i.to_bytes(20, "big"), PeerAddr("15.0.0.1", 1), 0.0)
    queries = [
        Query(b"a", "ping", b"Q" * 20, want=want),
        Query(b"b", "find_node", b"Q" * 20, target=IH, want=want),
        Query(b"c", "get_peers", b"Q" * 20, info_hash=IH, want=want),
        Query(b"d", "sample_infohashes", b"Q" * 20, target=IH, want=want),
    ]
    worst = 0.0
    for i, q in enumerate(queries):
        data = krpc.encode(q)
        (raw,) = send(node, data, (ip(10_000 + i), 6881))
        assert len(raw) <= 1200
        worst = max(worst, len(raw) / len(data))
    print(f"\nworst reply/query ratio (want={sorted(want)}): {worst:.2f}")
    assert worst <= 10


def test_read_only_node_never_replies() -> None:
    node = make_node(dht_read_only=True)
    for q in (
        Query(b"a", "ping", b"Q" * 20),
        Query(b"b", "get_peers", b"Q" * 20, info_hash=IH),
        bencode.encode({b"t": b"aa", b"y": b"q", b"q": b"bogus", b"a": {b"id": b"x" * 20}}),
    ):
        assert send(node, q if isinstance(q, bytes) else krpc.encode(q), ("16.0.0.1", 1)) == []


@pytest.mark.parametrize("case", ["no token", "other ip", "expired", "wrong hash"])
def test_write_token_abuse_stores_nothing(case: str) -> None:
    node = make_node()
    addr = ("17.0.0.1", 6881)
    (raw,) = send(node, krpc.encode(Query(b"g", "get_peers", b"Q" * 20, info_hash=IH)), addr, now=0.0)
    reply = krpc.decode(raw)
    assert isinstance(reply, Response) and reply.token
    token, info_hash, src, now = reply.token, IH, addr, 1.0
    if case == "no token":
        data = bencode.encode(
            {
                b"t": b"a",
                b"y": b"q",
                b"q": b"announce_peer",
                b"a": {b"id": b"Q" * 20, b"info_hash": IH, b"port": 1},
            }
        )
    else:
        if case == "other ip":
            src = ("17.0.0.2", 6881)
        elif case == "expired":
            now = 2 * node.settings.dht_token_rotation + 1
            node.handle_timer(node.settings.dht_token_rotation)
            node.handle_timer(now)
            node.datagrams_to_send(now)  # upkeep pings, not replies
        else:
            info_hash = b"J" * 20
        data = krpc.encode(Query(b"a", "announce_peer", b"Q" * 20, info_hash=info_hash, port=1, token=token))
    (raw2,) = send(node, data, src, now=now)
    err = krpc.decode(raw2)
    assert isinstance(err, Error) and err.code == 203
    assert len(node.store) == 0


def test_poisoned_get_peers_answer_is_filtered() -> None:
    """Case 34: a public node answers get_peers with private addresses and one victim IP on many ports."""
    node = make_node()
    responder = ("19.0.0.1", 6881)
    node.tables[4].heard_from(b"R" * 20, responder[0], responder[1], 0.0, responded=True)
    lookup_id = node.get_peers(IH, 0.0)
    ((query, _),) = node.datagrams_to_send(0.0)
    q = krpc.decode(query)
    assert isinstance(q, Query)
    values = [
        PeerAddr("10.0.0.1", 1),
        PeerAddr("127.0.0.1", 2),
        PeerAddr("192.168.1.1", 3),
        PeerAddr("0.0.0.0", 4),
    ]
    values += [PeerAddr("20.0.0.1", port) for port in range(1, 50)]
    values += [PeerAddr("21.0.0.1", 80), PeerAddr("21.0.0.1", 80)]
    reply = Response(q.tid, b"R" * 20, values=tuple(values), token=b"tok")
    send(node, krpc.encode(reply), responder, now=0.5)
    peers: list[PeerAddr] = []
    while (event := node.next_event()) is not None:
        peers.extend(getattr(event, "peers", ()) if getattr(event, "lookup_id", None) == lookup_id else ())
    found = set(peers)
    assert not any(p.host in ("10.0.0.1", "127.0.0.1", "192.168.1.1", "0.0.0.0") for p in found)
    assert len([p for p in found if p.host == "20.0.0.1"]) == node.settings.dht_max_peers_per_ip_per_lookup
    assert PeerAddr("21.0.0.1", 80) in found
