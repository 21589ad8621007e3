from __future__ import annotations

from shoal.dht.lookup import FAILED, Lookup
from shoal.types import PeerAddr

TARGET = b"\x00" * 20


def nid(i: int) -> bytes:
    return i.to_bytes(20, "big")


def node(i: int) -> tuple[bytes, tuple[str, int], bool]:
    return (nid(i), (f"10.0.0.{i}", 1), True)


def test_alpha_in_flight_and_termination_on_k_closest() -> None:
    lk = Lookup(1, "find_node", TARGET, 0.0, k=2, alpha=2)
    lk.add_nodes([node(100), node(90), node(80)], hop=1)
    first = lk.next_queries()
    assert [c.node_id for c in first] == [nid(80), nid(90)]
    assert lk.next_queries() == []  # alpha reached
    lk.on_response(("10.0.0.80", 1), nid(80), [node(5), node(6)])
    second = lk.next_queries()
    assert [c.node_id for c in second] == [nid(5)]
    lk.on_response(("10.0.0.5", 1), nid(5), [])
    lk.on_response(("10.0.0.90", 1), nid(90), [])
    assert [c.node_id for c in lk.next_queries()] == [nid(6)]
    assert not lk.finished
    lk.on_response(("10.0.0.6", 1), nid(6), [node(7)])  # 7 is farther than 5 and 6
    assert lk.finished
    assert [c.node_id for c in lk.closest_responded()] == [nid(5), nid(6)]
    assert lk.stats.hops == 2
    assert lk.stats.queries == 4


def test_failure_lets_next_candidate_in() -> None:
    lk = Lookup(1, "find_node", TARGET, 0.0, k=1, alpha=1)
    lk.add_nodes([node(1), node(2)], hop=1)
    (c,) = lk.next_queries()
    lk.on_failure(c.addr)
    assert c.state == FAILED
    (c2,) = lk.next_queries()
    assert c2.node_id == nid(2)
    lk.on_response(c2.addr, nid(2), [])
    assert lk.finished


def test_unknown_seed_gets_its_id_from_the_answer() -> None:
    lk = Lookup(1, "find_node", TARGET, 0.0, k=8)
    lk.add_seed(("9.9.9.9", 9))
    (c,) = lk.next_queries()
    lk.on_response(c.addr, nid(50), [node(3)])
    assert {x.node_id for x in lk.candidates} == {nid(50), nid(3)}


def test_candidates_bounded_and_peers_deduplicated() -> None:
    lk = Lookup(1, "get_peers", TARGET, 0.0, max_candidates=10, max_peers=3)
    lk.add_nodes([node(i) for i in range(100, 150)], hop=1)
    assert len(lk.candidates) == 10
    assert max(int.from_bytes(c.node_id or b"", "big") for c in lk.candidates) == 109
    (c, *_) = lk.next_queries()
    peers = [PeerAddr("1.1.1.1", p) for p in (1, 1, 2, 3, 4)]
    assert lk.on_response(c.addr, nid(100), [], values=peers, token=b"t") == peers[1:4]
    assert [t.node_id for t in lk.announce_targets()] == [nid(100)]


def test_max_queries_ends_the_lookup() -> None:
    lk = Lookup(1, "find_node", TARGET, 0.0, k=8, alpha=3, max_queries=2)
    lk.add_nodes([node(i) for i in range(1, 20)], hop=1)
    sent = lk.next_queries()
    assert len(sent) == 2
    for c in sent:
        lk.on_failure(c.addr)
    assert lk.finished


def test_timeout_near_target_is_retried_once_error_is_final() -> None:
    lk = Lookup(1, "find_node", TARGET, 0.0, k=2, alpha=1, max_retries=1)
    lk.add_nodes([node(1), node(2)], hop=1)
    (c,) = lk.next_queries()
    lk.on_failure(c.addr, timed_out=True)
    (again,) = lk.next_queries()
    assert again is c and c.retries == 1
    lk.on_failure(c.addr, timed_out=True)
    assert c.state == FAILED
    (c2,) = lk.next_queries()
    lk.on_failure(c2.addr)  # an error answer: no retry
    assert c2.state == FAILED and lk.finished
