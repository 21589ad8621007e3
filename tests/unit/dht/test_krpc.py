from __future__ import annotations

import pytest

from shoal.codec import bencode
from shoal.codec.compact import CompactNode
from shoal.dht import krpc
from shoal.dht.krpc import Error, KrpcMessageError, Query, Response
from shoal.errors import KrpcError
from shoal.types import PeerAddr

ID = b"A" * 20
IH = b"I" * 20


@pytest.mark.parametrize(
    "query",
    [
        Query(b"aa", "ping", ID),
        Query(b"ab", "find_node", ID, target=IH, want=frozenset({"n4", "n6"})),
        Query(b"ac", "get_peers", ID, info_hash=IH),
        Query(b"ad", "announce_peer", ID, info_hash=IH, port=6881, token=b"tok"),
        Query(b"ae", "announce_peer", ID, info_hash=IH, implied_port=True, token=b"tok"),
        Query(b"af", "sample_infohashes", ID, target=IH, read_only=True),
    ],
)
def test_query_round_trip(query: Query) -> None:
    assert krpc.decode(krpc.encode(query)) == query


def test_response_round_trip() -> None:
    r = Response(
        b"xy",
        ID,
        nodes=(CompactNode(b"B" * 20, PeerAddr("1.2.3.4", 5)),),
        nodes6=(CompactNode(b"C" * 20, PeerAddr("2001:db8::1", 6)),),
        values=(PeerAddr("5.6.7.8", 9), PeerAddr("2001:db8::2", 10)),
        token=b"t0k",
        samples=(IH, b"J" * 20),
        num=2,
        interval=60,
        ip=PeerAddr("9.9.9.9", 1234),
    )
    assert krpc.decode(krpc.encode(r)) == r


def test_error_round_trip() -> None:
    e = Error(b"zz", 201, "generic error")
    assert krpc.decode(krpc.encode(e)) == e


def _q(args: dict[bytes, object], method: bytes = b"ping", t: bytes = b"aa") -> bytes:
    return bencode.encode({b"t": t, b"y": b"q", b"q": method, b"a": args})


# RELIABILITY case 28: (datagram, expected tid (None = drop), expected code)
MALFORMED = [
    (b"garbage", None, 203),
    (b"li1ei2ee", None, 203),
    (bencode.encode({b"y": b"q", b"q": b"ping", b"a": {b"id": ID}}), None, 203),
    (bencode.encode({b"t": 5, b"y": b"q"}), None, 203),
    (_q({b"id": ID}, t=b"x" * 17), None, 203),
    (bencode.encode({b"t": b"aa", b"q": b"ping", b"a": {b"id": ID}}), b"aa", 203),
    (bencode.encode({b"t": b"aa", b"y": b"q", b"q": b"ping"}), b"aa", 203),
    (_q({b"id": b"short"}), b"aa", 203),
    (_q({b"id": ID * 2}), b"aa", 203),
    (_q({b"id": ID}, b"frobnicate"), b"aa", 204),
    (_q({b"id": ID, b"target": b"x"}, b"find_node"), b"aa", 203),
    (_q({b"id": ID, b"info_hash": IH, b"port": 0, b"token": b"t"}, b"announce_peer"), b"aa", 203),
    (_q({b"id": ID, b"info_hash": IH, b"port": 70000, b"token": b"t"}, b"announce_peer"), b"aa", 203),
    (_q({b"id": ID, b"info_hash": IH, b"port": 80}, b"announce_peer"), b"aa", 203),
    (_q({b"id": ID, b"info_hash": IH, b"port": b"80", b"token": b"t"}, b"announce_peer"), b"aa", 203),
    (bencode.encode({b"t": b"aa", b"y": b"r", b"r": {b"id": ID, b"nodes": b"x" * 27}}), b"aa", 203),
    (bencode.encode({b"t": b"aa", b"y": b"r", b"r": {b"id": ID, b"nodes6": b"x" * 26}}), b"aa", 203),
    (bencode.encode({b"t": b"aa", b"y": b"r", b"r": {b"id": ID, b"values": [b"12345"]}}), b"aa", 203),
    (bencode.encode({b"t": b"aa", b"y": b"r", b"r": {b"id": ID, b"values": b"123456"}}), b"aa", 203),
    (bencode.encode({b"t": b"aa", b"y": b"e", b"e": b"oops"}), b"aa", 203),
    (bencode.encode({b"t": b"aa", b"y": b"x"}), b"aa", 203),
]


@pytest.mark.parametrize(("data", "tid", "code"), MALFORMED)
def test_malformed_messages(data: bytes, tid: bytes | None, code: int) -> None:
    with pytest.raises(KrpcMessageError) as info:
        krpc.decode(data)
    assert info.value.tid == tid
    assert info.value.code == code
    assert isinstance(info.value, KrpcError)


def test_transaction_id_at_the_limit_is_accepted() -> None:
    assert krpc.decode(_q({b"id": ID}, t=b"x" * 16), max_tid=16).tid == b"x" * 16
    with pytest.raises(KrpcMessageError):
        krpc.decode(_q({b"id": ID}, t=b"x" * 17), max_tid=16)


def test_datagram_size_limit_one_past() -> None:
    data = _q({b"id": ID, b"pad": b"p" * 100})
    assert krpc.decode(data, max_size=len(data)).method == "ping"
    with pytest.raises(KrpcMessageError) as info:
        krpc.decode(data, max_size=len(data) - 1)
    assert info.value.tid is None


def test_nodes_with_port_zero_are_dropped() -> None:
    raw = b"B" * 20 + bytes([1, 2, 3, 4, 0, 0]) + b"C" * 20 + bytes([1, 2, 3, 5, 0, 9])
    r = krpc.decode(bencode.encode({b"t": b"aa", b"y": b"r", b"r": {b"id": ID, b"nodes": raw}}))
    assert isinstance(r, Response)
    assert [n.addr for n in r.nodes] == [PeerAddr("1.2.3.5", 9)]


def test_unknown_want_entries_are_ignored() -> None:
    q = krpc.decode(_q({b"id": ID, b"target": IH, b"want": [b"n4", b"zz", 5]}, b"find_node"))
    assert isinstance(q, Query) and q.want == frozenset({"n4"})
