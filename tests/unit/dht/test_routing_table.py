from __future__ import annotations

import random

from shoal.dht.node_id import common_prefix_bits
from shoal.dht.routing_table import RoutingTable

OWN = b"\x00" * 20


def nid(first: int, rest: int = 0) -> bytes:
    return bytes([first]) + rest.to_bytes(19, "big")


def ip(i: int) -> str:
    return f"10.{(i >> 8) & 255}.{i & 255}.1"


def test_bucket_holds_k_then_splits_near_own_id() -> None:
    t = RoutingTable(OWN, bucket_size=2)
    assert t.heard_from(nid(0x80), ip(1), 1, 0.0, responded=True)
    assert t.heard_from(nid(0x81), ip(2), 1, 0.0, responded=True)
    assert len(t.buckets) == 1
    # a third far node: the table splits once, but bucket 0 (far half) stays at k
    assert not t.heard_from(nid(0x82), ip(3), 1, 0.0, responded=True)
    assert len(t.buckets) == 2
    assert len(t.buckets[0].nodes) == 2
    assert len(t.buckets[0].replacements) == 1
    # near nodes split further
    assert t.heard_from(nid(0x01), ip(4), 1, 0.0, responded=True)
    assert t.heard_from(nid(0x02), ip(5), 1, 0.0, responded=True)
    assert t.heard_from(nid(0x40), ip(6), 1, 0.0, responded=True)
    for i, bucket in enumerate(t.buckets[:-1]):
        assert all(common_prefix_bits(OWN, n.node_id) == i for n in bucket.nodes)


def test_one_entry_per_ip_and_per_subnet_in_a_bucket() -> None:
    t = RoutingTable(OWN, bucket_size=8)
    assert t.heard_from(nid(0x80), "1.2.3.4", 1, 0.0, responded=True)
    assert not t.heard_from(nid(0x81), "1.2.3.4", 2, 0.0, responded=True)  # same IP
    assert not t.heard_from(nid(0x82), "1.2.3.5", 1, 0.0, responded=True)  # same /24, same bucket
    assert t.heard_from(nid(0x83), "1.2.4.5", 1, 0.0, responded=True)
    assert len(t) == 2


def test_allow_same_ip_knob_for_loopback() -> None:
    t = RoutingTable(OWN, bucket_size=8, allow_same_ip=True)
    for port in range(1, 6):
        assert t.heard_from(nid(0x80 + port), "127.0.0.1", port, 0.0, responded=True)
    assert len(t) == 5


def test_id_cannot_move_to_another_address() -> None:
    t = RoutingTable(OWN)
    t.heard_from(nid(0x80), ip(1), 1, 0.0, responded=True)
    assert not t.heard_from(nid(0x80), ip(2), 1, 1.0, responded=True)
    entry = t.get(nid(0x80))
    assert entry is not None and entry.host == ip(1)


def test_own_id_and_bad_length_are_refused() -> None:
    t = RoutingTable(OWN)
    assert not t.heard_from(OWN, ip(1), 1, 0.0, responded=True)
    assert not t.heard_from(b"x" * 19, ip(1), 1, 0.0, responded=True)


def test_liveness_good_questionable_bad() -> None:
    t = RoutingTable(OWN, max_fails=2, questionable_after=900)
    t.heard_from(nid(0x80), ip(1), 1, 0.0, responded=True)
    t.heard_from(nid(0x90), ip(2), 1, 0.0, responded=False)
    good, unpinged = t.get(nid(0x80)), t.get(nid(0x90))
    assert good is not None and unpinged is not None
    assert t.status(good, 10.0) == "good"
    assert t.status(unpinged, 10.0) == "questionable"
    assert t.status(good, 900.0) == "questionable"
    assert [n.node_id for n in t.questionable(900.0, 5)] == [nid(0x80), nid(0x90)]
    t.failed(nid(0x80), 901.0)
    assert t.status(good, 901.0) == "questionable"
    t.failed(nid(0x80), 902.0)
    assert t.status(good, 902.0) == "bad"
    t.heard_from(nid(0x80), ip(1), 1, 903.0, responded=True)
    assert t.status(good, 903.0) == "good"


def test_bad_node_is_replaced_from_the_cache() -> None:
    t = RoutingTable(OWN, bucket_size=2, max_fails=1)
    t.heard_from(nid(0x80), ip(1), 1, 0.0, responded=True)
    t.heard_from(nid(0x81), ip(2), 1, 0.0, responded=True)
    t.heard_from(nid(0x01), ip(9), 1, 0.0, responded=True)  # forces the split
    t.heard_from(nid(0x82), ip(3), 1, 0.0, responded=True)  # cached
    assert t.get(nid(0x82)) is None
    t.failed(nid(0x80), 1.0)
    assert t.get(nid(0x80)) is None
    assert t.get(nid(0x82)) is not None


def test_replacement_cache_is_bounded_one_past() -> None:
    t = RoutingTable(OWN, bucket_size=1, replacement_size=3)
    t.heard_from(nid(0x01), ip(0), 1, 0.0, responded=True)
    t.heard_from(nid(0x80), ip(1), 1, 0.0, responded=True)
    for i in range(2, 2 + 4):
        t.heard_from(nid(0x80 + i), ip(i), 1, float(i), responded=True)
    assert len(t.buckets[0].replacements) == 3


def test_closest_orders_by_xor_distance() -> None:
    t = RoutingTable(OWN, bucket_size=8)
    ids = [nid(b) for b in (0x80, 0x40, 0x20, 0x10, 0x08)]
    for i, node_id in enumerate(ids):
        t.heard_from(node_id, ip(i), 1, 0.0, responded=True)
    assert [n.node_id for n in t.closest(nid(0x41), 2)] == [nid(0x40), nid(0x08)]


def test_flood_of_distinct_ids_stays_bounded() -> None:
    rng = random.Random(1)
    t = RoutingTable(OWN, bucket_size=8, replacement_size=8)
    for i in range(20_000):
        t.heard_from(rng.getrandbits(160).to_bytes(20, "big"), ip(i), 1, float(i), responded=True)
    assert all(len(b.nodes) <= 8 and len(b.replacements) <= 8 for b in t.buckets)
    assert len(t) <= 8 * len(t.buckets)
    assert len(t.buckets) <= 20  # only the buckets near our own id split
