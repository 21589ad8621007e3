from __future__ import annotations

import random

import pytest

from shoal.errors import DisconnectReason, LocalProtocolError, PeerProtocolError
from shoal.wire.handshake import (
    PREFIX,
    Handshake,
    Reserved,
    allowed_fast_set,
    check_prefix,
    decode_handshake,
    encode_handshake,
    make_peer_id,
)

INFO_HASH = b"\xaa" * 20
PEER_ID = b"-SH0100-abcdefghijkl"


def test_literal_handshake() -> None:
    raw = encode_handshake(INFO_HASH, PEER_ID, Reserved.make(extension=True, fast=True, dht=True))
    assert raw == b"\x13BitTorrent protocol" + b"\x00\x00\x00\x00\x00\x10\x00\x05" + INFO_HASH + PEER_ID
    hs = decode_handshake(raw)
    assert hs == Handshake(Reserved.from_bytes(b"\x00\x00\x00\x00\x00\x10\x00\x05"), INFO_HASH, PEER_ID)
    assert hs.reserved.extension and hs.reserved.fast and hs.reserved.dht and not hs.reserved.v2
    assert hs.encode() == raw


def test_reserved_bits() -> None:
    assert Reserved.make(extension=False, fast=False).to_bytes() == bytes(8)
    assert Reserved.make(extension=True, fast=False).to_bytes() == b"\x00\x00\x00\x00\x00\x10\x00\x00"
    assert Reserved.make(extension=False, fast=True).to_bytes() == b"\x00\x00\x00\x00\x00\x00\x00\x04"
    assert (
        Reserved.make(extension=False, fast=False, dht=True).to_bytes() == b"\x00\x00\x00\x00\x00\x00\x00\x01"
    )
    assert (
        Reserved.make(extension=False, fast=False, v2=True).to_bytes() == b"\x00\x00\x00\x00\x00\x00\x00\x10"
    )
    assert Reserved.from_bytes(b"\xff" * 8).fast


@pytest.mark.parametrize("size", [67, 69])
def test_wrong_size(size: int) -> None:
    with pytest.raises(PeerProtocolError) as info:
        decode_handshake(PREFIX + bytes(size - 20))
    assert info.value.reason is DisconnectReason.BAD_HANDSHAKE


def test_prefix_checked_progressively() -> None:
    check_prefix(b"\x13Bit")
    check_prefix(b"")
    with pytest.raises(PeerProtocolError):
        check_prefix(b"\x13Bis")
    with pytest.raises(PeerProtocolError):
        decode_handshake(b"\x13BitTorrent protocoL" + bytes(48))


def test_encode_checks_sizes() -> None:
    with pytest.raises(LocalProtocolError):
        encode_handshake(b"x", PEER_ID, Reserved())
    with pytest.raises(LocalProtocolError):
        encode_handshake(INFO_HASH, b"x", Reserved())


def test_peer_id() -> None:
    a = make_peer_id(random.Random(1))
    assert a[:8] == b"-SH0100-" and len(a) == 20
    assert a != make_peer_id(random.Random(2))
    with pytest.raises(LocalProtocolError):
        make_peer_id(random.Random(1), b"x" * 20)


def test_allowed_fast_set_bep6_vectors() -> None:
    ip = bytes([80, 4, 4, 200])
    assert allowed_fast_set(ip, INFO_HASH, 1313, 7) == [1059, 431, 808, 1217, 287, 376, 1188]
    assert allowed_fast_set(ip, INFO_HASH, 1313, 9) == [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]


def test_allowed_fast_set_small_torrents() -> None:
    assert sorted(allowed_fast_set(bytes(4), INFO_HASH, 3, 10)) == [0, 1, 2]
    assert allowed_fast_set(bytes(4), INFO_HASH, 0, 10) == []
    with pytest.raises(LocalProtocolError):
        allowed_fast_set(bytes(16), INFO_HASH, 10, 2)
