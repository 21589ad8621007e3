from __future__ import annotations

import hashlib

import pytest

from shoal.errors import PeerProtocolError
from shoal.wire.metadata import (
    METADATA_PIECE_SIZE,
    MetadataData,
    MetadataFetcher,
    MetadataReject,
    MetadataRequest,
    MetadataServer,
    decode_metadata_message,
    encode_metadata_message,
    metadata_piece_count,
)

INFO = bytes(range(256)) * 200  # 51200 bytes: 4 pieces, the last 2048 bytes
INFO_HASH = hashlib.sha1(INFO).digest()
MAX = 1024 * 1024


def test_literals() -> None:
    assert encode_metadata_message(MetadataRequest(0)) == b"d8:msg_typei0e5:piecei0ee"
    assert encode_metadata_message(MetadataReject(3)) == b"d8:msg_typei2e5:piecei3ee"
    assert encode_metadata_message(
        MetadataData(1, 5, b"hello")
    ) == b"d8:msg_typei1e5:piecei1e10:total_sizei5ee" + (b"hello")
    assert decode_metadata_message(
        b"d8:msg_typei1e5:piecei0e10:total_sizei5eehello", max_metadata_size=MAX
    ) == (MetadataData(0, 5, b"hello"))
    assert decode_metadata_message(b"d8:msg_typei0e5:piecei2ee", max_metadata_size=MAX) == MetadataRequest(2)
    assert decode_metadata_message(b"d8:msg_typei2e5:piecei2ee", max_metadata_size=MAX) == MetadataReject(2)


def test_unknown_msg_type_ignored() -> None:
    assert decode_metadata_message(b"d8:msg_typei7e5:piecei0ee", max_metadata_size=MAX) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"le",
        b"d5:piecei0ee",  # no msg_type
        b"d8:msg_typei0e5:piecei-1ee",
        b"d8:msg_typei0e5:piecei0eeXX",  # trailing data on a request
        b"d8:msg_typei1e5:piecei0e10:total_sizei5eehell",  # one short
        b"d8:msg_typei1e5:piecei0e10:total_sizei5eehello!",  # one long
        b"d8:msg_typei1e5:piecei1e10:total_sizei5eehello",  # piece past the end
        b"d8:msg_typei1e5:piecei0e10:total_sizei0ee",
        b"d8:msg_typei1e5:piecei0ee",  # no total_size
    ],
)
def test_invalid(raw: bytes) -> None:
    with pytest.raises(PeerProtocolError):
        decode_metadata_message(raw, max_metadata_size=MAX)


def test_total_size_one_past_limit() -> None:
    limit = METADATA_PIECE_SIZE + 1
    ok = encode_metadata_message(MetadataData(1, limit, b"x"))
    assert decode_metadata_message(ok, max_metadata_size=limit) == MetadataData(1, limit, b"x")
    with pytest.raises(PeerProtocolError, match="total_size"):
        decode_metadata_message(
            encode_metadata_message(MetadataData(1, limit + 1, b"xx")), max_metadata_size=limit
        )
    with pytest.raises(PeerProtocolError, match="out of range"):
        decode_metadata_message(encode_metadata_message(MetadataRequest(2)), max_metadata_size=limit)


def serve_all(fetcher: MetadataFetcher, server: MetadataServer, peer: str, now: float = 0.0) -> object:
    result = None
    while (piece := fetcher.next_request(peer, now)) is not None:
        answer = server.respond(piece)
        assert isinstance(answer, MetadataData)
        result = fetcher.on_data(peer, answer.piece, answer.total_size, answer.data)
    return result


def test_fetch_from_two_peers() -> None:
    fetcher = MetadataFetcher(INFO_HASH, MAX)
    server = MetadataServer(INFO)
    assert fetcher.set_size(len(INFO), "a") and fetcher.set_size(len(INFO), "b")
    assert fetcher.num_pieces == metadata_piece_count(len(INFO)) == 4
    pa = fetcher.next_request("a", 0.0)
    pb = fetcher.next_request("b", 0.0)
    assert pa == 0 and pb == 1
    assert fetcher.next_request("a", 0.0) == 2
    for peer, piece in (("a", 0), ("b", 1), ("a", 2)):
        data = server.respond(piece)
        assert isinstance(data, MetadataData)
        assert fetcher.on_data(peer, piece, data.total_size, data.data) is None
    assert fetcher.received == 3
    piece = fetcher.next_request("b", 0.0)
    data = server.respond(3)
    assert piece == 3 and isinstance(data, MetadataData) and len(data.data) == 2048
    result = fetcher.on_data("b", 3, data.total_size, data.data)
    assert result is not None and result.ok and result.info == INFO and result.contributors == {"a", "b"}


def test_bad_hash_names_contributors_and_resets() -> None:
    bad = bytearray(INFO)
    bad[5] ^= 1
    fetcher = MetadataFetcher(INFO_HASH, MAX)
    fetcher.set_size(len(INFO), "liar")
    result = serve_all(fetcher, MetadataServer(bytes(bad)), "liar")
    assert result is not None and not result.ok  # type: ignore[attr-defined]
    assert result.contributors == {"liar"}  # type: ignore[attr-defined]
    assert fetcher.suspects == {"liar"} and fetcher.total_size is None
    fetcher.set_size(len(INFO), "honest")
    again = serve_all(fetcher, MetadataServer(INFO), "honest")
    assert again is not None and again.info == INFO  # type: ignore[attr-defined]


def test_wrong_size_claim() -> None:
    fetcher = MetadataFetcher(INFO_HASH, MAX)
    assert not fetcher.set_size(MAX + 1, "a")  # over the limit: ignored
    assert not fetcher.set_size(0, "a")
    assert fetcher.set_size(len(INFO), "a")
    assert not fetcher.set_size(len(INFO) + 1, "b")  # disagrees with the size in use
    assert fetcher.next_request("b", 0.0) == 0
    with pytest.raises(PeerProtocolError, match="disagrees"):
        fetcher.on_data("b", 0, len(INFO) + 1, bytes(METADATA_PIECE_SIZE))
    with pytest.raises(PeerProtocolError, match="wrong size"):
        fetcher.on_data("b", 0, len(INFO), bytes(10))
    assert fetcher.on_data("b", 4, len(INFO), bytes(10)) is None  # never asked: ignored
    assert fetcher.on_data("b", 1, len(INFO), bytes(METADATA_PIECE_SIZE)) is None
    assert fetcher.received == 0


def test_unrequested_metadata_piece_ignored() -> None:
    fetcher = MetadataFetcher(INFO_HASH, MAX)
    fetcher.set_size(len(INFO), "a")
    data = MetadataServer(INFO).respond(0)
    assert isinstance(data, MetadataData)
    assert fetcher.on_data("a", 0, data.total_size, data.data) is None
    assert fetcher.received == 0


def test_v2_verify_callable() -> None:
    digest = hashlib.sha256(INFO).digest()
    fetcher = MetadataFetcher(digest[:20], MAX, verify=lambda info: hashlib.sha256(info).digest() == digest)
    fetcher.set_size(len(INFO), "a")
    result = serve_all(fetcher, MetadataServer(INFO), "a")
    assert result is not None and result.info == INFO  # type: ignore[attr-defined]


def test_reject_timeout_and_peer_lost() -> None:
    fetcher = MetadataFetcher(INFO_HASH, MAX, request_timeout=10.0)
    fetcher.set_size(len(INFO), "a")
    assert fetcher.next_request("a", 0.0) == 0
    fetcher.on_reject("a", 0)
    assert fetcher.next_request("a", 0.0) == 1  # does not ask a again for a piece it rejected
    assert fetcher.next_request("b", 0.0) == 0
    assert fetcher.next_request("c", 5.0) == 2
    assert fetcher.next_request("c", 11.0) == 0  # b's request for 0 timed out
    assert fetcher.next_request("c", 11.0) == 1  # and so did a's for 1
    assert fetcher.next_request("d", 12.0) == 3
    fetcher.peer_lost("c")
    assert fetcher.next_request("d", 12.0) == 0  # c's requests are free again at once


def test_server_rejects_out_of_range() -> None:
    server = MetadataServer(INFO)
    assert server.respond(4) == MetadataReject(4)
    assert server.respond(-1) == MetadataReject(-1)
    last = server.respond(3)
    assert isinstance(last, MetadataData) and last.data == INFO[3 * METADATA_PIECE_SIZE :]
