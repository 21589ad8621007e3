from __future__ import annotations

import random

import pytest

from shoal.codec import bencode
from shoal.config import Settings
from shoal.dht import krpc
from shoal.dht.events import LookupFinished, PeerAnnounced
from shoal.dht.krpc import Error, Query, Response
from shoal.dht.node import DhtNode
from shoal.errors import LocalProtocolError
from shoal.testing.dht_sim import DhtSim, sim_settings
from shoal.types import PeerAddr

IH = bytes(range(20))


def small_sim(n: int, **settings: object) -> DhtSim:
    sim = DhtSim(sim_settings(**settings), seed=2)
    for _ in range(n):
        sim.add_node()
    return sim


def bootstrap_all(sim: DhtSim) -> None:
    addrs = list(sim.nodes)
    router = addrs[0]
    for addr in addrs[1:]:
        lid = sim.nodes[addr].bootstrap([router], sim.now)
        sim.flush(addr)
        assert sim.run_until(lambda a=addr, i=lid: sim.finished(a, i) is not None, 60)


def test_ping_adds_both_sides() -> None:
    sim = small_sim(2)
    (a, b) = list(sim.nodes)
    sim.nodes[a].add_node(b, sim.now)
    sim.flush(a)
    sim.run_until(lambda: False, 1.0)
    assert sim.nodes[a].tables[4].get(sim.nodes[b].node_id) is not None
    assert sim.nodes[b].tables[4].get(sim.nodes[a].node_id) is not None


def test_bootstrap_and_find_node_converge_in_small_network() -> None:
    sim = small_sim(40)
    bootstrap_all(sim)
    addrs = list(sim.nodes)
    target = bytes(20)
    lid = sim.nodes[addrs[-1]].find_node(target, sim.now)
    sim.flush(addrs[-1])
    assert sim.run_until(lambda: sim.finished(addrs[-1], lid) is not None, 60)
    event = sim.finished(addrs[-1], lid)
    assert event is not None
    truth = set(sim.true_closest(target, 8)) - {sim.nodes[addrs[-1]].node_id}
    assert truth <= {n.node_id for n in event.nodes}


@pytest.mark.parametrize("implied", [False, True])
def test_announce_then_get_peers_finds_the_peer(implied: bool) -> None:
    sim = small_sim(30)
    bootstrap_all(sim)
    addrs = list(sim.nodes)
    announcer, seeker = addrs[3], addrs[-1]
    lid = sim.nodes[announcer].get_peers(IH, sim.now, announce_port=7000, implied_port=implied)
    sim.flush(announcer)
    assert sim.run_until(lambda: sim.finished(announcer, lid) is not None, 60)
    done = sim.finished(announcer, lid)
    assert done is not None and done.announced_to > 0
    sim.run_until(lambda: False, 10.0)
    stored = [e for evs in sim.events.values() for e in evs if isinstance(e, PeerAnnounced)]
    expected = PeerAddr(announcer[0], announcer[1] if implied else 7000)
    assert stored and all(e.peer == expected for e in stored)
    lid2 = sim.nodes[seeker].get_peers(IH, sim.now)
    sim.flush(seeker)
    assert sim.run_until(lambda: sim.finished(seeker, lid2) is not None, 60)
    found = sim.finished(seeker, lid2)
    assert found is not None and expected in found.peers


def _exchange(node: DhtNode, data: bytes, addr: tuple[str, int] = ("10.9.9.9", 1000)) -> list[bytes]:
    node.receive_datagram(data, addr, 1.0)
    return [d for d, _ in node.datagrams_to_send(1.0)]


def test_announce_with_bad_token_is_refused() -> None:
    node = DhtNode(sim_settings(), random.Random(1), 0.0)
    q = Query(b"t1", "announce_peer", b"Q" * 20, info_hash=IH, port=80, token=b"forged")
    (reply,) = _exchange(node, krpc.encode(q))
    err = krpc.decode(reply)
    assert isinstance(err, Error) and err.code == 203
    assert len(node.store) == 0


def test_token_from_another_ip_is_refused() -> None:
    node = DhtNode(sim_settings(), random.Random(1), 0.0)
    (reply,) = _exchange(
        node, krpc.encode(Query(b"t1", "get_peers", b"Q" * 20, info_hash=IH)), ("10.1.1.1", 5)
    )
    r = krpc.decode(reply)
    assert isinstance(r, Response) and r.token
    q = Query(b"t2", "announce_peer", b"Q" * 20, info_hash=IH, port=80, token=r.token)
    (reply2,) = _exchange(node, krpc.encode(q), ("10.1.1.2", 5))
    assert isinstance(krpc.decode(reply2), Error)
    (reply3,) = _exchange(node, krpc.encode(q), ("10.1.1.1", 5))
    assert isinstance(krpc.decode(reply3), Response)
    assert len(node.store) == 1


def test_reply_never_exceeds_ten_times_the_query_or_1200_bytes() -> None:
    node = DhtNode(sim_settings(), random.Random(1), 0.0)
    for i in range(500):
        node.store.announce(IH, PeerAddr(f"10.0.{i >> 8}.{i & 255}", 6881), 0.0)
    for i in range(300):
        node.tables[4].heard_from(random.Random(i).randbytes(20), f"10.{i}.0.1", 1, 0.0, responded=True)
    query = krpc.encode(Query(b"t", "get_peers", b"Q" * 20, info_hash=IH, want=frozenset({"n4", "n6"})))
    (reply,) = _exchange(node, query)
    r = krpc.decode(reply)
    assert isinstance(r, Response) and r.values
    assert len(reply) <= min(1200, 10 * len(query))


def test_errors_are_answered_only_for_queries() -> None:
    node = DhtNode(sim_settings(), random.Random(1), 0.0)
    bad_query = bencode.encode({b"t": b"aa", b"y": b"q", b"q": b"nope", b"a": {b"id": b"Q" * 20}})
    (reply,) = _exchange(node, bad_query)
    err = krpc.decode(reply)
    assert isinstance(err, Error) and err.code == 204 and err.tid == b"aa"
    bad_response = bencode.encode({b"t": b"aa", b"y": b"r", b"r": {b"id": b"short"}})
    assert _exchange(node, bad_response) == []
    assert _exchange(node, b"not bencode") == []
    assert _exchange(node, bencode.encode([1, 2])) == []


def test_unsolicited_response_is_ignored() -> None:
    node = DhtNode(sim_settings(), random.Random(1), 0.0)
    assert _exchange(node, krpc.encode(Response(b"zz", b"R" * 20))) == []
    assert len(node.tables[4]) == 0


def test_read_only_node_marks_queries_and_answers_nothing() -> None:
    sim = small_sim(1)
    ro_addr = ("10.200.0.1", 6881)
    ro = sim.add_node(ro_addr, settings=sim_settings(dht_read_only=True))
    (normal,) = [a for a in sim.nodes if a != ro_addr]
    ro.add_node(normal, sim.now)
    (data, _), *_ = ro.datagrams_to_send(sim.now)
    q = krpc.decode(data)
    assert isinstance(q, Query) and q.read_only
    sim.nodes[normal].receive_datagram(data, ro_addr, sim.now)
    sim.flush(normal)
    sim.run_until(lambda: False, 1.0)
    assert len(sim.nodes[normal].tables[4]) == 0  # BEP 43: ro nodes are not added
    assert len(ro.tables[4]) == 1  # but it learns from the answer
    assert _exchange(ro, krpc.encode(Query(b"t", "ping", b"Q" * 20))) == []


def test_query_timeout_fails_the_node() -> None:
    s = sim_settings(dht_max_fails=1)
    node = DhtNode(s, random.Random(1), 0.0)
    node.tables[4].heard_from(b"Z" * 20, "10.5.5.5", 1, 0.0, responded=True)
    lid = node.find_node(b"Y" * 20, 0.0)
    assert len(node.datagrams_to_send(0.0)) == 1
    timer = node.get_timer()
    assert timer is not None and timer <= s.dht_query_timeout
    node.handle_timer(s.dht_query_timeout)
    assert len(node.datagrams_to_send(s.dht_query_timeout)) == 1  # asked once more (dht_lookup_retries)
    assert node.next_event() is None
    node.handle_timer(2 * s.dht_query_timeout)
    events = []
    while (e := node.next_event()) is not None:
        events.append(e)
    assert any(isinstance(e, LookupFinished) and e.lookup_id == lid and e.queries == 2 for e in events)
    entry = node.tables[4].get(b"Z" * 20)
    assert entry is None or entry.fails >= 1


def test_lookup_limit_one_past() -> None:
    node = DhtNode(sim_settings(dht_max_lookups=2), random.Random(1), 0.0)
    node.tables[4].heard_from(b"Z" * 20, "10.5.5.5", 1, 0.0, responded=True)
    node.find_node(b"A" * 20, 0.0)
    node.find_node(b"B" * 20, 0.0)
    with pytest.raises(LocalProtocolError):
        node.find_node(b"C" * 20, 0.0)


def test_want_n6_answers_nodes6() -> None:
    node = DhtNode(sim_settings(), random.Random(1), 0.0)
    node.tables[6].heard_from(b"S" * 20, "2001:db8::5", 7, 0.0, responded=True)
    node.tables[4].heard_from(b"F" * 20, "10.0.0.5", 7, 0.0, responded=True)
    query = krpc.encode(Query(b"t", "find_node", b"Q" * 20, target=b"S" * 20, want=frozenset({"n4", "n6"})))
    (reply,) = _exchange(node, query)
    r = krpc.decode(reply)
    assert isinstance(r, Response)
    assert [n.node_id for n in r.nodes6] == [b"S" * 20]
    assert [n.node_id for n in r.nodes] == [b"F" * 20]
    (reply6,) = _exchange(
        node, krpc.encode(Query(b"u", "find_node", b"Q" * 20, target=b"S" * 20)), ("2001:db8::9", 9)
    )
    r6 = krpc.decode(reply6)
    assert isinstance(r6, Response) and r6.nodes6 and not r6.nodes


def test_sample_infohashes_answered_and_queried() -> None:
    sim = small_sim(10)
    bootstrap_all(sim)
    addrs = list(sim.nodes)
    for i in range(5):
        sim.nodes[addrs[2]].store.announce(bytes([i]) * 20, PeerAddr("10.0.0.1", 1), sim.now)
    lid = sim.nodes[addrs[-1]].sample_infohashes(bytes(20), sim.now)
    sim.flush(addrs[-1])
    assert sim.run_until(lambda: sim.finished(addrs[-1], lid) is not None, 60)
    done = sim.finished(addrs[-1], lid)
    assert done is not None
    assert {bytes([i]) * 20 for i in range(5)} <= set(done.samples)


def test_stats_snapshot() -> None:
    sim = small_sim(5)
    bootstrap_all(sim)
    st = sim.nodes[next(iter(sim.nodes))].stats()
    assert st.nodes4 == 4 and st.lookups == 0 and st.queries_received > 0


def test_maintenance_pings_questionable_nodes_and_refreshes_buckets() -> None:
    s = Settings().with_(dht_maintenance_interval=10.0, dht_max_pings_per_tick=2)
    node = DhtNode(s, random.Random(1), 0.0)
    for i in range(4):
        node.tables[4].heard_from(bytes([0x80 + i]) + bytes(19), f"10.{i}.0.1", 1, 0.0, responded=True)
    node.handle_timer(10.0)
    assert node.datagrams_to_send(10.0) == []  # all good, buckets fresh
    now = s.dht_node_questionable_after + 10.0
    node.handle_timer(now)
    sent = [krpc.decode(d) for d, _ in node.datagrams_to_send(now)]
    methods = sorted(q.method for q in sent if isinstance(q, Query))
    assert methods.count("ping") == 2  # at most dht_max_pings_per_tick
    assert "find_node" in methods  # the stale bucket is refreshed
    assert node.stats().lookups == 1


def test_bootstrap_is_retried_while_the_table_is_empty() -> None:
    s = Settings().with_(dht_maintenance_interval=10.0, dht_bootstrap_retry=30.0, dht_query_timeout=5.0)
    node = DhtNode(s, random.Random(1), 0.0)
    node.bootstrap([("10.9.9.9", 6881)], 0.0)
    assert len(node.datagrams_to_send(0.0)) == 1
    t = 0.0
    queries = 0
    while t < 100.0:
        t = node.get_timer() or t + 1
        node.handle_timer(t)
        queries += len(node.datagrams_to_send(t))
    assert queries >= 2  # retries (lookup retry and bootstrap retry) while nobody answers
