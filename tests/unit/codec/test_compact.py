from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.codec.compact import (
    CompactNode,
    decode_nodes,
    decode_peer,
    decode_peers,
    encode_nodes,
    encode_peer,
    encode_peers,
    is_ipv6,
)
from shoal.errors import LocalProtocolError, RemoteProtocolError
from shoal.types import PeerAddr


def test_ipv4_peer_literal() -> None:
    assert encode_peer(PeerAddr("10.0.0.1", 6881)) == b"\x0a\x00\x00\x01\x1a\xe1"
    assert decode_peers(b"\x0a\x00\x00\x01\x1a\xe1\x7f\x00\x00\x01\x00\x50") == [
        PeerAddr("10.0.0.1", 6881),
        PeerAddr("127.0.0.1", 80),
    ]


def test_ipv6_peer_literal() -> None:
    raw = b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x01" + b"\x1a\xe1"
    assert encode_peer(("2001:db8::1", 6881), v6=True) == raw
    assert decode_peers(raw, v6=True) == [PeerAddr("2001:db8::1", 6881)]
    assert decode_peer(raw) == PeerAddr("2001:db8::1", 6881)


def test_nodes_literal() -> None:
    node_id = bytes(range(20))
    raw = node_id + b"\x01\x02\x03\x04\x00\x01"
    assert encode_nodes([CompactNode(node_id, PeerAddr("1.2.3.4", 1))]) == raw
    assert decode_nodes(raw) == [CompactNode(node_id, PeerAddr("1.2.3.4", 1))]
    raw6 = node_id + b"\xfe\x80" + b"\x00" * 13 + b"\x02" + b"\xff\xff"
    assert decode_nodes(raw6, v6=True) == [CompactNode(node_id, PeerAddr("fe80::2", 65535))]
    assert encode_nodes([(node_id, PeerAddr("fe80::2", 65535))], v6=True) == raw6


@pytest.mark.parametrize(("size", "v6"), [(7, False), (5, False), (19, True), (17, True)])
def test_peers_bad_length(size: int, v6: bool) -> None:
    with pytest.raises(RemoteProtocolError, match="not a multiple"):
        decode_peers(b"\x01" * size, v6=v6)


def test_peers_lenient_drops_partial_entry() -> None:
    assert decode_peers(b"\x01\x01\x01\x01\x00\x02\xff", strict=False) == [PeerAddr("1.1.1.1", 2)]


@pytest.mark.parametrize(("size", "v6"), [(27, False), (25, False), (39, True)])
def test_nodes_bad_length(size: int, v6: bool) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_nodes(b"\x01" * size, v6=v6)


def test_decode_peer_bad_size() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_peer(b"\x00" * 7)


def test_encode_errors() -> None:
    with pytest.raises(LocalProtocolError):
        encode_peer(("::1", 1))
    with pytest.raises(LocalProtocolError):
        encode_peer(("1.2.3.4", 1), v6=True)
    with pytest.raises(LocalProtocolError):
        encode_peer(("1.2.3.4", 65536))
    with pytest.raises(LocalProtocolError):
        encode_nodes([(b"short", PeerAddr("1.2.3.4", 1))])


def test_is_ipv6() -> None:
    assert is_ipv6("::1") and not is_ipv6("127.0.0.1")


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda a: a.compressed)
ports = st.integers(0, 65535)


@given(st.lists(st.tuples(ipv4, ports), max_size=20))
def test_round_trip_v4(peers: list[tuple[str, int]]) -> None:
    assert decode_peers(encode_peers(peers)) == [PeerAddr(*p) for p in peers]


@given(st.lists(st.tuples(ipv6, ports), max_size=20))
def test_round_trip_v6(peers: list[tuple[str, int]]) -> None:
    assert decode_peers(encode_peers(peers, v6=True), v6=True) == [PeerAddr(*p) for p in peers]


@given(st.binary(max_size=200), st.booleans())
def test_garbage_only_raises_remote_error(data: bytes, v6: bool) -> None:
    for fn in (decode_peers, decode_nodes):
        try:
            fn(data, v6=v6)
        except RemoteProtocolError:
            pass
