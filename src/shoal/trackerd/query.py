"""Pure parsing of tracker HTTP requests and encoding of their bencoded answers (BEP 3, 7, 23, 48).

Everything here takes bytes and returns values; a malformed request raises :class:`BadRequest` whose message
becomes the ``failure reason`` of a 400 answer (RELIABILITY case 36). ``ip=`` and ``ipv6=`` are ignored: the
address is always the one the request came from (a client must not steer a swarm at a third party).
"""

from __future__ import annotations

import ipaddress
import re
from binascii import a2b_qp
from urllib.parse import unquote_to_bytes

from shoal.codec.bencode import encode
from shoal.errors import ShoalError
from shoal.records import record
from shoal.tracker.proto.messages import Event, ScrapeStats
from shoal.trackerd.registry import AnnounceResult, ServerAnnounce

_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_MAX_INT = 1 << 63


class BadRequest(ShoalError):
    """A request the tracker cannot parse; answered with 400 and this text as failure reason."""


@record
class Target:
    """``/announce``, ``/scrape``, ``/PASSKEY/announce``… split into what the tracker needs."""

    action: str  # "announce", "scrape", "stats", "stats.json" or "" (unknown)
    passkey: str | None
    query: bytes


def parse_target(target: bytes) -> Target:
    path, _, query = target.partition(b"?")
    parts = path.split(b"/")
    if len(parts) == 2:
        return Target(parts[1].decode("latin-1"), None, query)
    if len(parts) == 3 and parts[1]:
        key = parts[1].decode("latin-1")
        return Target(parts[2].decode("latin-1") if key.isalnum() else "", key, query)
    return Target("", None, query)


def _params(query: bytes, max_params: int = 256) -> list[tuple[bytes, bytes]]:
    if _BAD_PERCENT.search(query):
        raise BadRequest("bad percent-encoding in query string")
    out = []
    for part in query.split(b"&"):
        if part:
            k, _, v = part.partition(b"=")
            out.append((k, v))
    if len(out) > max_params:
        raise BadRequest(f"{len(out)} query parameters exceed {max_params}")
    return out


def _int(name: str, value: bytes, lo: int = 0, hi: int = _MAX_INT) -> int:
    if not value.isdigit() or len(value) > 20:
        raise BadRequest(f"{name} {value[:24]!r} is not a number")
    n = int(value)
    if not lo <= n <= hi:
        raise BadRequest(f"{name} {n} out of range {lo}..{hi}")
    return n


def unquote(value: bytes) -> bytes:
    """Percent-decoding (the query was already checked for bad escapes). Fast path: ``binascii.a2b_qp`` (C)
    after turning ``%`` into ``=``; it is only trusted when every escape was decoded (upper-case hex, no raw
    ``=``), otherwise ``urllib``'s decoder is used."""
    if b"%" not in value:
        return value
    if b"=" not in value:
        out = a2b_qp(value.replace(b"%", b"="))
        if len(out) == len(value) - 2 * value.count(b"%"):
            return out
    return unquote_to_bytes(value)


def _hash(name: str, value: bytes) -> bytes:
    raw = unquote(value)
    if len(raw) != 20:
        raise BadRequest(f"{name} of {len(raw)} bytes is not 20 bytes")
    return raw


@record
class AnnounceQuery:
    request: ServerAnnounce
    compact: bool
    no_peer_id: bool


def parse_announce(
    query: bytes, ip_packed: bytes, passkey: str | None, max_params: int = 256
) -> AnnounceQuery:
    """Parse an announce query; ``ip_packed`` is the requester's address (4 or 16 bytes). A repeated
    parameter counts with its last value (the hot path: one dict, then a lookup per known name)."""
    if _BAD_PERCENT.search(query):
        raise BadRequest("bad percent-encoding in query string")
    parts = query.split(b"&")
    if len(parts) > max_params:
        n = sum(1 for part in parts if part)
        if n > max_params:
            raise BadRequest(f"{n} query parameters exceed {max_params}")
    params: dict[bytes, bytes] = {}
    for part in parts:
        key, _, value = part.partition(b"=")
        params[key] = value
    get = params.get
    v = get(b"info_hash")
    if v is None:
        raise BadRequest("missing info_hash")
    info_hash = _hash("info_hash", v)
    v = get(b"peer_id")
    if v is None:
        raise BadRequest("missing peer_id")
    peer_id = _hash("peer_id", v)
    v = get(b"port")
    if v is None:
        raise BadRequest("missing port")
    port = _int("port", v, 1, 65535)
    v = get(b"left")
    left = 1 if v is None else _int("left", v)
    v = get(b"downloaded")
    downloaded = 0 if v is None else _int("downloaded", v)
    v = get(b"uploaded")
    uploaded = 0 if v is None else _int("uploaded", v)
    v = get(b"event")
    event = Event.NONE if not v else Event.from_http(v.decode("latin-1"))
    v = get(b"numwant")
    numwant = None if v is None else _int("numwant", v, 0, 1 << 31)
    v = get(b"compact")
    compact = v is None or v != b"0"
    no_peer_id = get(b"no_peer_id") == b"1"
    req = ServerAnnounce(
        info_hash,
        peer_id,
        ip_packed + port.to_bytes(2, "big"),
        left,
        event,
        numwant,
        passkey,
        downloaded,
        uploaded,
        not compact and not no_peer_id,
    )
    return AnnounceQuery(req, compact, no_peer_id)


def parse_scrape(query: bytes, max_hashes: int) -> list[bytes]:
    """The info-hashes of a scrape (empty means a full scrape); more than ``max_hashes`` is refused."""
    hashes = [_hash("info_hash", v) for k, v in _params(query, max_hashes + 16) if k == b"info_hash"]
    if len(hashes) > max_hashes:
        raise BadRequest(f"scrape of {len(hashes)} info-hashes exceeds {max_hashes}")
    return list(dict.fromkeys(hashes))


def encode_announce(res: AnnounceResult, compact: bool = True, no_peer_id: bool = True) -> bytes:
    """The bencoded announce answer (keys in sorted order, written by hand: this is the hot path)."""
    head = b"d8:completei%de10:incompletei%de8:intervali%de12:min intervali%de" % (
        res.complete,
        res.incomplete,
        res.interval,
        res.min_interval,
    )
    if compact:
        if res.has_v6:
            p4 = b"".join([a for a in res.peers if len(a) == 6])
            p6 = b"".join([a for a in res.peers if len(a) == 18])
        else:
            p4, p6 = b"".join(res.peers), b""
        body = b"5:peers%d:%s" % (len(p4), p4)
        if p6:
            body += b"6:peers6%d:%s" % (len(p6), p6)
        return head + body + b"e"
    items = []
    ids = res.peer_ids or [b""] * len(res.peers)
    for addr, peer_id in zip(res.peers, ids, strict=False):
        d: dict[bytes, object] = {
            b"ip": _ip_text(addr[:-2]).encode(),
            b"port": int.from_bytes(addr[-2:], "big"),
        }
        if not no_peer_id and peer_id:
            d[b"peer id"] = peer_id
        items.append(d)
    return head + b"5:peers" + encode(items) + b"e"


def _ip_text(packed: bytes) -> str:
    if len(packed) == 4:
        return ".".join(str(b) for b in packed)
    return ipaddress.IPv6Address(packed).compressed


def encode_scrape(stats: dict[bytes, ScrapeStats]) -> bytes:
    files = {
        ih: {b"complete": s.complete, b"downloaded": s.downloaded, b"incomplete": s.incomplete}
        for ih, s in stats.items()
    }
    return encode({b"files": files})


def encode_failure(reason: str) -> bytes:
    return encode({b"failure reason": reason.encode("utf-8")})
