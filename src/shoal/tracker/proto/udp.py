"""UDP tracker protocol (BEP 15), both sides, sans-IO.

Packets (all integers big-endian)::

    connect   request   i64 protocol_id=0x41727101980, i32 action=0, i32 transaction_id           16 bytes
              response  i32 action=0, i32 transaction_id, i64 connection_id                       16 bytes
    announce  request   i64 connection_id, i32 action=1, i32 transaction_id, 20s info_hash,
                        20s peer_id, i64 downloaded, i64 left, i64 uploaded, i32 event, u32 ip,
                        u32 key, i32 num_want, u16 port                                           98 bytes
              response  i32 action=1, i32 transaction_id, i32 interval, i32 leechers, i32 seeders,
                        then 6-byte (IPv4) or 18-byte (IPv6) peers
    scrape    request   i64 connection_id, i32 action=2, i32 transaction_id, 20s info_hash * n
              response  i32 action=2, i32 transaction_id, then (i32 seeders, i32 completed, i32 leechers) * n
    error     response  i32 action=3, i32 transaction_id, message

Client side: transaction ids come from an injected ``random.Random``; a connection id may be reused for
:data:`CLIENT_CONNECTION_LIFETIME` seconds; :func:`retry_timeout` is the spec's ``15 * 2**n`` schedule.

Server side: :class:`ConnectionIdMinter` makes stateless connection ids that cannot be forged: 4 bytes of issue
time and the first 4 bytes of a keyed BLAKE2b over (time, client ip), accepted for
:data:`SERVER_CONNECTION_LIFETIME` seconds. A connect flood allocates nothing. The id proves the source *address*
(what BEP 15 asks); it is deliberately not bound to the source port: libtorrent shares connection ids between all
sessions of a process (a process-wide cache keyed by tracker address), and NATs may change a client's port.
"""

from __future__ import annotations

import hashlib
import random
import struct

from shoal.codec.compact import decode_peers
from shoal.errors import LocalProtocolError, TrackerError
from shoal.records import record
from shoal.tracker.proto.messages import (
    INFO_HASH_SIZE,
    AnnounceRequest,
    AnnounceResponse,
    Event,
    ScrapeStats,
    clean_text,
)

PROTOCOL_ID = 0x41727101980
ACTION_CONNECT = 0
ACTION_ANNOUNCE = 1
ACTION_SCRAPE = 2
ACTION_ERROR = 3

CLIENT_CONNECTION_LIFETIME = 60.0
SERVER_CONNECTION_LIFETIME = 120.0
RETRY_BASE = 15.0
MAX_RETRIES = 8
MAX_SCRAPE_HASHES = 74  # 74 * 20 + 16 bytes keeps a scrape request inside one small datagram

_CONNECT = struct.Struct(">qii")
_CONNECT_RESP = struct.Struct(">iiq")
_HEADER = struct.Struct(">ii")
_REQ_HEADER = struct.Struct(">qii")
_ANNOUNCE = struct.Struct(">qii20s20sqqqiIIiH")
_ANNOUNCE_RESP = struct.Struct(">iiiii")
_SCRAPE_ENTRY = struct.Struct(">iii")
_STAMP = struct.Struct(">I")
REQUEST_HEADER = _REQ_HEADER  # i64 connection id, i32 action, i32 transaction id
ANNOUNCE = _ANNOUNCE  # the whole 98-byte announce request, for servers that unpack it themselves
ANNOUNCE_SIZE = _ANNOUNCE.size  # 98
_I32_MAX = 0x7FFFFFFF


def transaction_id(rng: random.Random) -> int:
    """A fresh 32-bit transaction id."""
    return rng.getrandbits(32) - (1 << 31)  # signed, as it travels in an i32


def retry_timeout(attempt: int, base: float = RETRY_BASE) -> float:
    """Seconds to wait for an answer to attempt number ``attempt`` (0-based): ``base * 2**attempt``."""
    if attempt < 0:
        raise LocalProtocolError(f"retry attempt {attempt} is negative")
    return float(base * 2.0 ** min(attempt, MAX_RETRIES))


def connection_id_fresh(obtained_at: float, now: float, lifetime: float = CLIENT_CONNECTION_LIFETIME) -> bool:
    """Whether a connection id obtained at ``obtained_at`` may still be used by a client at ``now``."""
    return 0.0 <= now - obtained_at < lifetime


# ---------------------------------------------------------------- client side


def encode_connect(tid: int) -> bytes:
    return _CONNECT.pack(PROTOCOL_ID, ACTION_CONNECT, tid)


def encode_announce(connection_id: int, tid: int, req: AnnounceRequest, numwant_default: int = -1) -> bytes:
    numwant = req.numwant if req.numwant is not None else numwant_default
    return _ANNOUNCE.pack(
        connection_id,
        ACTION_ANNOUNCE,
        tid,
        req.info_hash,
        req.peer_id,
        req.downloaded,
        req.left,
        req.uploaded,
        req.event.udp,
        0,
        (req.key or 0) & 0xFFFFFFFF,
        max(-1, min(numwant, _I32_MAX)),
        req.port,
    )


def encode_scrape(connection_id: int, tid: int, info_hashes: list[bytes]) -> bytes:
    if len(info_hashes) > MAX_SCRAPE_HASHES:
        raise LocalProtocolError(f"scrape of {len(info_hashes)} hashes exceeds {MAX_SCRAPE_HASHES}")
    return _REQ_HEADER.pack(connection_id, ACTION_SCRAPE, tid) + b"".join(info_hashes)


def _check_header(data: bytes, tid: int, action: int, min_size: int) -> None:
    if len(data) < 8:
        raise TrackerError(f"udp tracker packet of {len(data)} bytes is shorter than 8")
    got_action, got_tid = _HEADER.unpack_from(data)
    if got_tid != tid:
        raise TrackerError(f"udp tracker transaction id {got_tid} does not match {tid}")
    if got_action == ACTION_ERROR:
        text = clean_text(data[8:])
        raise TrackerError(f"tracker failure: {text}", failure_reason=text)
    if got_action != action:
        raise TrackerError(f"udp tracker action {got_action} does not answer action {action}")
    if len(data) < min_size:
        raise TrackerError(f"udp tracker packet of {len(data)} bytes is shorter than {min_size}")


def response_transaction_id(data: bytes) -> int | None:
    """The transaction id of any response packet, or None if it is too short to have one."""
    return _HEADER.unpack_from(data)[1] if len(data) >= 8 else None


def decode_connect_response(data: bytes, tid: int) -> int:
    """The connection id from a connect response."""
    _check_header(data, tid, ACTION_CONNECT, _CONNECT_RESP.size)
    return int(_CONNECT_RESP.unpack_from(data)[2])


def decode_announce_response(
    data: bytes, tid: int, *, v6: bool = False, min_interval: float = 60.0, max_interval: float = 86400.0
) -> AnnounceResponse:
    """An announce response; peers are 18-byte entries when the request went over IPv6 (``v6``)."""
    _check_header(data, tid, ACTION_ANNOUNCE, _ANNOUNCE_RESP.size)
    _, _, interval, leechers, seeders = _ANNOUNCE_RESP.unpack_from(data)
    body = data[_ANNOUNCE_RESP.size :]
    size = 18 if v6 else 6
    usable = body[: len(body) - len(body) % size]  # a trailing partial entry is dropped
    peers = [p for p in decode_peers(usable, v6=v6) if p.port != 0]
    return AnnounceResponse(
        interval=float(min(max(interval, min_interval), max_interval)),
        peers=list(dict.fromkeys(peers)),
        complete=seeders if seeders >= 0 else None,
        incomplete=leechers if leechers >= 0 else None,
    )


def decode_scrape_response(data: bytes, tid: int, info_hashes: list[bytes]) -> dict[bytes, ScrapeStats]:
    _check_header(data, tid, ACTION_SCRAPE, 8 + _SCRAPE_ENTRY.size * len(info_hashes))
    out: dict[bytes, ScrapeStats] = {}
    for i, ih in enumerate(info_hashes):
        seeders, completed, leechers = _SCRAPE_ENTRY.unpack_from(data, 8 + i * _SCRAPE_ENTRY.size)
        out[ih] = ScrapeStats(
            complete=max(seeders, 0), downloaded=max(completed, 0), incomplete=max(leechers, 0)
        )
    return out


# ---------------------------------------------------------------- server side


@record
class ConnectRequest:
    tid: int


@record
class UdpAnnounce:
    connection_id: int
    tid: int
    request: AnnounceRequest


@record
class UdpScrape:
    connection_id: int
    tid: int
    info_hashes: list[bytes]


UdpRequest = ConnectRequest | UdpAnnounce | UdpScrape


def decode_request(data: bytes, max_scrape_hashes: int = MAX_SCRAPE_HASHES) -> UdpRequest | None:
    """Parse a client packet; None for anything that is not a well-formed request (it is dropped)."""
    if len(data) < 16:
        return None
    cid, action, tid = _REQ_HEADER.unpack_from(data)
    if action == ACTION_CONNECT:
        return ConnectRequest(tid) if cid == PROTOCOL_ID else None
    if action == ACTION_ANNOUNCE:
        if len(data) < ANNOUNCE_SIZE:
            return None
        f = _ANNOUNCE.unpack_from(data)
        req = AnnounceRequest(
            info_hash=f[3],
            peer_id=f[4],
            downloaded=f[5],
            left=f[6],
            uploaded=f[7],
            event=Event.from_udp(f[8]),
            key=f[10],
            numwant=f[11] if f[11] >= 0 else None,
            port=f[12],
        )
        return UdpAnnounce(cid, tid, req)
    if action == ACTION_SCRAPE:
        body = data[16:]
        n = len(body) // INFO_HASH_SIZE
        if n == 0:
            return None
        n = min(n, max_scrape_hashes)
        hashes = [body[i * INFO_HASH_SIZE : (i + 1) * INFO_HASH_SIZE] for i in range(n)]
        return UdpScrape(cid, tid, hashes)
    return None


def encode_connect_response(tid: int, connection_id: int) -> bytes:
    return _CONNECT_RESP.pack(ACTION_CONNECT, tid, connection_id)


def encode_announce_response(tid: int, interval: int, leechers: int, seeders: int, peers: bytes) -> bytes:
    return (
        _ANNOUNCE_RESP.pack(
            ACTION_ANNOUNCE, tid, min(interval, _I32_MAX), min(leechers, _I32_MAX), min(seeders, _I32_MAX)
        )
        + peers
    )


def encode_scrape_response(tid: int, stats: list[ScrapeStats]) -> bytes:
    return _HEADER.pack(ACTION_SCRAPE, tid) + b"".join(
        _SCRAPE_ENTRY.pack(
            min(s.complete, _I32_MAX), min(s.downloaded, _I32_MAX), min(s.incomplete, _I32_MAX)
        )
        for s in stats
    )


def encode_error(tid: int, message: str) -> bytes:
    return _HEADER.pack(ACTION_ERROR, tid) + message.encode("utf-8")[:200]


class ConnectionIdMinter:
    """Stateless, unforgeable BEP 15 connection ids (keyed hash of issue time and client ip).

    The last id minted for each ip is remembered (``ip -> (stamp, id)``, at most ``cache_size`` ips, cleared
    when full): a connect answered in the same second as an earlier one from that ip, and the announce that
    follows a connect, then cost a dict lookup instead of a keyed hash. Only ids this minter made are cached,
    and a cached id still passes the age check, so the cache changes nothing about what is accepted.
    """

    def __init__(
        self, secret: bytes, lifetime: float = SERVER_CONNECTION_LIFETIME, cache_size: int = 65536
    ) -> None:
        if len(secret) < 16:
            raise LocalProtocolError(f"connection id secret of {len(secret)} bytes is shorter than 16")
        self._keyed = hashlib.blake2b(digest_size=4, key=secret[:64])  # copied per use: no re-keying cost
        self._lifetime = lifetime
        self._cache: dict[str, tuple[int, int]] = {}
        self._cache_size = cache_size

    def _mac(self, stamp: int, ip: str) -> int:
        h = self._keyed.copy()
        h.update(_STAMP.pack(stamp) + ip.encode())
        return int.from_bytes(h.digest(), "big")

    def make(self, ip: str, now: float) -> int:
        stamp = int(now) & 0xFFFFFFFF
        hit = self._cache.get(ip)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = (stamp << 32) | self._mac(stamp, ip)
        cid = value - (1 << 64) if value >= 1 << 63 else value  # signed i64 on the wire
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # bounded under a flood from many (spoofed) addresses
        self._cache[ip] = (stamp, cid)
        return cid

    def valid(self, connection_id: int, ip: str, now: float) -> bool:
        value = connection_id & 0xFFFFFFFFFFFFFFFF
        stamp = value >> 32
        age = (int(now) - stamp) & 0xFFFFFFFF
        if age > self._lifetime:
            return False
        hit = self._cache.get(ip)
        if hit is not None and hit[1] == connection_id:
            return True  # minted here for this ip (same stamp, hence same mac)
        return (value & 0xFFFFFFFF) == self._mac(stamp, ip)
