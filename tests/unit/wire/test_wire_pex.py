from __future__ import annotations

import pytest

from shoal.errors import PeerProtocolError
from shoal.types import PeerAddr
from shoal.wire.pex import FLAG_SEED, PexMessage, PexPeer, PexRateLimiter, PexSender, decode_pex, encode_pex


def test_literal_v4() -> None:
    raw = encode_pex([PexPeer(PeerAddr("1.2.3.4", 6881), FLAG_SEED)], [PeerAddr("5.6.7.8", 80)])
    assert raw == b"d5:added6:\x01\x02\x03\x04\x1a\xe17:added.f1:\x027:dropped6:\x05\x06\x07\x08\x00\x50e"
    assert decode_pex(raw) == PexMessage((PexPeer(PeerAddr("1.2.3.4", 6881), 2),), (PeerAddr("5.6.7.8", 80),))


def test_v6_round_trip() -> None:
    added = [PexPeer(PeerAddr("::1", 1), 0x10), PexPeer(PeerAddr("9.9.9.9", 2), 0)]
    msg = decode_pex(encode_pex(added, [PeerAddr("fe80::1", 3)]))
    assert set(msg.added) == set(added) and msg.dropped == (PeerAddr("fe80::1", 3),)


def test_cap_one_past() -> None:
    peers = [PexPeer(PeerAddr(f"10.0.{i // 256}.{i % 256}", 1000 + i)) for i in range(51)]
    msg = decode_pex(encode_pex(peers, [p.addr for p in peers]), max_peers=50)
    assert len(msg.added) == 50 and len(msg.dropped) == 50
    assert msg.added == tuple(peers[:50])
    assert len(decode_pex(encode_pex(peers[:50], []), max_peers=50).added) == 50


def test_cap_counts_v4_and_v6_together() -> None:
    peers = [PexPeer(PeerAddr("1.1.1.1", i + 1)) for i in range(3)] + [PexPeer(PeerAddr("::2", 9))]
    assert len(decode_pex(encode_pex(peers, []), max_peers=3).added) == 3


def test_missing_flags_and_partial_entries() -> None:
    msg = decode_pex(b"d5:added8:\x01\x01\x01\x01\x00\x01\xff\xffe")
    assert msg.added == (PexPeer(PeerAddr("1.1.1.1", 1), 0),)
    assert decode_pex(b"de") == PexMessage()
    assert decode_pex(b"d5:addedi5ee") == PexMessage()


@pytest.mark.parametrize("raw", [b"", b"le", b"d5:added", b"i3e"])
def test_garbage(raw: bytes) -> None:
    with pytest.raises(PeerProtocolError):
        decode_pex(raw)


def test_rate_limiter() -> None:
    lim = PexRateLimiter(60.0)
    assert lim.allow(0.0) and not lim.allow(59.9) and lim.allow(60.0)
    assert lim.next_allowed() == 120.0


def test_sender_deltas_and_rate() -> None:
    a, b, c = (PexPeer(PeerAddr("1.1.1.1", p)) for p in (1, 2, 3))
    sender = PexSender(interval=60.0, max_peers=50)
    first = sender.update([a, b], 0.0)
    assert first is not None and set(decode_pex(first).added) == {a, b}
    assert sender.update([a, b], 100.0) is None  # nothing changed
    assert sender.update([a, c], 10.0) is None  # too early: the change waits
    later = sender.update([a, c], 61.0)
    assert later is not None
    msg = decode_pex(later)
    assert msg.added == (c,) and msg.dropped == (b.addr,)


def test_sender_caps() -> None:
    peers = [PexPeer(PeerAddr("2.2.2.2", i + 1)) for i in range(60)]
    sender = PexSender(max_peers=50)
    first = sender.update(peers, 0.0)
    assert first is not None and len(decode_pex(first).added) == 50
    second = sender.update(peers, 60.0)
    assert second is not None and len(decode_pex(second).added) == 10
