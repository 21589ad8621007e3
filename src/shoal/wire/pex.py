"""ut_pex (BEP 11): peer exchange messages, caps and the once-a-minute rule, as pure logic.

A message is a bencoded dictionary: ``added`` / ``added.f`` (compact IPv4 peers, one flag byte each), ``added6`` /
``added6.f`` (IPv6), ``dropped`` / ``dropped6``. Decoding takes at most ``max_peers`` added and ``max_peers``
dropped peers (IPv4 first), ignores a trailing partial entry, and gives peers without a flag byte flags 0. A
payload that is not a bencoded dictionary raises :class:`shoal.errors.PeerProtocolError`.

:class:`PexRateLimiter` answers "may a message go (or be accepted) now" from an explicit ``now``;
:class:`PexSender` keeps what one peer was told and builds the next delta.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from shoal.codec import bencode
from shoal.codec.compact import PEER4_SIZE, PEER6_SIZE, decode_peers, encode_peer, is_ipv6
from shoal.errors import BencodeError, DisconnectReason, PeerProtocolError
from shoal.records import record
from shoal.types import PeerAddr

FLAG_ENCRYPTION = 0x01
FLAG_SEED = 0x02
FLAG_UTP = 0x04
FLAG_HOLEPUNCH = 0x08
FLAG_REACHABLE = 0x10

DEFAULT_MAX_PEERS = 50
DEFAULT_INTERVAL = 60.0


class PexPeer(NamedTuple):
    addr: PeerAddr
    flags: int = 0


@record
class PexMessage:
    added: tuple[PexPeer, ...] = ()
    dropped: tuple[PeerAddr, ...] = ()


def encode_pex(added: Iterable[PexPeer], dropped: Iterable[PeerAddr]) -> bytes:
    """The bencoded ut_pex payload (without the extended message header)."""
    a4: list[bytes] = []
    f4 = bytearray()
    a6: list[bytes] = []
    f6 = bytearray()
    for peer in added:
        if is_ipv6(peer.addr.host):
            a6.append(encode_peer(peer.addr, v6=True))
            f6.append(peer.flags & 0xFF)
        else:
            a4.append(encode_peer(peer.addr))
            f4.append(peer.flags & 0xFF)
    d4: list[bytes] = []
    d6: list[bytes] = []
    for addr in dropped:
        if is_ipv6(addr.host):
            d6.append(encode_peer(addr, v6=True))
        else:
            d4.append(encode_peer(addr))
    d: dict[bytes, Any] = {b"added": b"".join(a4), b"added.f": bytes(f4), b"dropped": b"".join(d4)}
    if a6 or d6:
        d[b"added6"] = b"".join(a6)
        d[b"added6.f"] = bytes(f6)
        d[b"dropped6"] = b"".join(d6)
    return bencode.encode(d)


def _bytes(d: dict[bytes, Any], key: bytes, limit: int) -> bytes:
    value = d.get(key)
    return value[:limit] if isinstance(value, bytes) else b""


def decode_pex(payload: bytes, *, max_peers: int = DEFAULT_MAX_PEERS) -> PexMessage:
    """Parse a ut_pex payload, keeping at most ``max_peers`` added and ``max_peers`` dropped peers."""
    try:
        d = bencode.decode(payload, max_depth=4, strict=False)
    except BencodeError as exc:
        raise PeerProtocolError(f"invalid ut_pex message: {exc}", DisconnectReason.PROTOCOL_VIOLATION)
    if not isinstance(d, dict):
        raise PeerProtocolError(
            f"ut_pex message is a {type(d).__name__}, not a dictionary", DisconnectReason.PROTOCOL_VIOLATION
        )
    added: list[PexPeer] = []
    for key, flag_key, size, v6 in (
        (b"added", b"added.f", PEER4_SIZE, False),
        (b"added6", b"added6.f", PEER6_SIZE, True),
    ):
        room = max_peers - len(added)
        if room <= 0:
            break
        peers = decode_peers(_bytes(d, key, room * size), v6=v6, strict=False)
        flags = _bytes(d, flag_key, len(peers))
        added.extend(PexPeer(p, flags[i] if i < len(flags) else 0) for i, p in enumerate(peers))
    dropped: list[PeerAddr] = []
    for key, size, v6 in ((b"dropped", PEER4_SIZE, False), (b"dropped6", PEER6_SIZE, True)):
        room = max_peers - len(dropped)
        if room <= 0:
            break
        dropped.extend(decode_peers(_bytes(d, key, room * size), v6=v6, strict=False))
    return PexMessage(tuple(added), tuple(dropped))


class PexRateLimiter:
    """At most one message per ``interval`` seconds; the first is allowed at once."""

    __slots__ = ("_last", "interval")

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        """True (and counts a message) if one may go now."""
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True

    def next_allowed(self) -> float | None:
        return None if self._last is None else self._last + self.interval


class PexSender:
    """What one peer has been told; :meth:`update` builds the next delta when the rate limit allows."""

    __slots__ = ("_limiter", "_sent", "max_peers")

    def __init__(self, *, interval: float = DEFAULT_INTERVAL, max_peers: int = DEFAULT_MAX_PEERS) -> None:
        self._limiter = PexRateLimiter(interval)
        self._sent: dict[PeerAddr, int] = {}
        self.max_peers = max_peers

    def due(self, now: float) -> bool:
        """Whether :meth:`update` may send now (the rate limit allows a message)."""
        at = self._limiter.next_allowed()
        return at is None or now >= at

    def update(self, current: Iterable[PexPeer], now: float) -> bytes | None:
        """The next ut_pex payload for the peer, or None when nothing changed or it is too early."""
        if not self.due(now):
            return None  # too early: not even the delta is worked out (it is O(peers) per peer)
        cur = {p.addr: p.flags for p in current}
        added = [PexPeer(a, f) for a, f in cur.items() if a not in self._sent][: self.max_peers]
        dropped = [a for a in self._sent if a not in cur][: self.max_peers]
        if not added and not dropped:
            return None
        if not self._limiter.allow(now):
            return None
        for peer in added:
            self._sent[peer.addr] = peer.flags
        for addr in dropped:
            del self._sent[addr]
        return encode_pex(added, dropped)
