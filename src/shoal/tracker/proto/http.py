"""HTTP tracker protocol, client side (BEP 3, 7, 23, 48): URLs out, bencoded answers in. Sans-IO.

* :func:`announce_url` appends the announce parameters to a tracker URL (keeping any query it already has, such as
  a passkey); binary values are percent-encoded byte by byte.
* :func:`parse_announce` validates a response body: a ``failure reason`` becomes :class:`TrackerError`; compact
  ``peers`` (BEP 23), dictionary ``peers`` (BEP 3) and ``peers6`` (BEP 7) are decoded; a compact list whose length
  is not a multiple of 6 (18) is dropped as a whole; peers with port 0 or a non-literal address are dropped;
  ``interval`` and ``min interval`` are clamped to ``[min_interval, max_interval]``.
* :func:`scrape_url` turns an announce URL into its scrape URL (BEP 48 convention) and :func:`parse_scrape`
  reads the ``files`` dictionary.

Tracker text (``failure reason``, ``warning message``) is kept as plain text only (:func:`clean_text`).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote_from_bytes, urlsplit, urlunsplit

from shoal.codec import bencode
from shoal.codec.compact import decode_peers
from shoal.errors import BencodeError, RemoteProtocolError, TrackerError
from shoal.tracker.proto.messages import (
    INFO_HASH_SIZE,
    AnnounceRequest,
    AnnounceResponse,
    ScrapeStats,
    clean_text,
)
from shoal.types import PeerAddr

logger = logging.getLogger(__name__)

MAX_RESPONSE_DEPTH = 8  # Transmission parses tracker answers with depth <= 8
MIN_INTERVAL = 60.0
MAX_INTERVAL = 86400.0
DEFAULT_INTERVAL = 1800.0


def _q(value: bytes) -> str:
    return quote_from_bytes(value, safe="")


def announce_url(base: str, req: AnnounceRequest) -> str:
    """The full announce URL for ``req`` on the tracker at ``base``."""
    params = [
        f"info_hash={_q(req.info_hash)}",
        f"peer_id={_q(req.peer_id)}",
        f"port={req.port}",
        f"uploaded={req.uploaded}",
        f"downloaded={req.downloaded}",
        f"left={req.left}",
    ]
    if req.compact:
        params.append("compact=1")
    params.append("no_peer_id=1")
    if req.event.http:
        params.append(f"event={req.event.http}")
    if req.numwant is not None:
        params.append(f"numwant={req.numwant}")
    if req.key is not None:
        params.append(f"key={req.key & 0xFFFFFFFF:08x}")
    if req.tracker_id is not None:
        params.append(f"trackerid={_q(req.tracker_id)}")
    if req.ipv6 is not None:
        params.append(f"ipv6={_q(req.ipv6.encode())}")
    return _append_query(base, "&".join(params))


def _append_query(base: str, query: str) -> str:
    parts = urlsplit(base)
    joined = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, ""))


def scrape_url(announce: str) -> str | None:
    """The scrape URL for an announce URL, or None when the tracker has none (BEP 48: the last path
    component must start with ``announce``; it is replaced by ``scrape``)."""
    parts = urlsplit(announce)
    head, sep, last = parts.path.rpartition("/")
    if not sep or not last.startswith("announce"):
        return None
    path = f"{head}/scrape{last[len('announce') :]}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def scrape_request_url(scrape: str, info_hashes: Iterable[bytes]) -> str:
    """``scrape`` with one ``info_hash`` parameter per hash."""
    return _append_query(scrape, "&".join(f"info_hash={_q(h)}" for h in info_hashes))


def _decode_dict(body: bytes) -> dict[bytes, Any]:
    try:
        value = bencode.decode(body, max_depth=MAX_RESPONSE_DEPTH, strict=False)
    except BencodeError as exc:
        raise TrackerError(f"tracker response is not valid bencode: {exc}") from None
    if not isinstance(value, dict):
        raise TrackerError("tracker response is not a dictionary")
    return value


def _int(d: dict[bytes, Any], key: bytes) -> int | None:
    v = d.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _count(d: dict[bytes, Any], key: bytes) -> int | None:
    v = _int(d, key)
    return v if v is not None and v >= 0 else None


def clamp_interval(value: int | float | None, default: float, lo: float, hi: float) -> float:
    """An interval from a tracker, forced into ``[lo, hi]``; ``default`` when missing."""
    if value is None:
        return min(max(default, lo), hi)
    return float(min(max(value, lo), hi))


def _dict_peers(items: list[Any]) -> list[PeerAddr]:
    peers: list[PeerAddr] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        ip, port = item.get(b"ip"), item.get(b"port")
        if not isinstance(ip, bytes) or not isinstance(port, int) or not 0 < port <= 0xFFFF:
            continue
        try:
            addr = ipaddress.ip_address(ip.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            continue  # host names are not resolved: a tracker could steer us anywhere
        peers.append(PeerAddr(addr.compressed, port))
    return peers


def _compact(data: bytes, v6: bool) -> list[PeerAddr]:
    try:
        return [p for p in decode_peers(data, v6=v6) if p.port != 0]
    except RemoteProtocolError as exc:
        logger.debug("dropping bad compact peer list: %s", exc)
        return []


def parse_announce(
    body: bytes,
    *,
    min_interval: float = MIN_INTERVAL,
    max_interval: float = MAX_INTERVAL,
    default_interval: float = DEFAULT_INTERVAL,
    max_peers: int = 1000,
) -> AnnounceResponse:
    """Validate an announce response body; raise :class:`TrackerError` for a failure or garbage."""
    d = _decode_dict(body)
    failure = d.get(b"failure reason")
    if failure is not None:
        text = clean_text(failure) if isinstance(failure, (bytes, str)) else "unreadable failure reason"
        raise TrackerError(f"tracker failure: {text}", failure_reason=text, retryable=True)
    interval = clamp_interval(_int(d, b"interval"), default_interval, min_interval, max_interval)
    raw_min = _int(d, b"min interval")
    min_iv = None if raw_min is None else clamp_interval(raw_min, default_interval, min_interval, interval)
    peers: list[PeerAddr] = []
    raw_peers = d.get(b"peers")
    if isinstance(raw_peers, bytes):
        peers.extend(_compact(raw_peers, v6=False))
    elif isinstance(raw_peers, list):
        peers.extend(_dict_peers(raw_peers))
    raw6 = d.get(b"peers6")
    if isinstance(raw6, bytes):
        peers.extend(_compact(raw6, v6=True))
    unique = list(dict.fromkeys(peers))[:max_peers]
    warning = d.get(b"warning message")
    tid = d.get(b"tracker id")
    return AnnounceResponse(
        interval=interval,
        min_interval=min_iv,
        peers=unique,
        complete=_count(d, b"complete"),
        incomplete=_count(d, b"incomplete"),
        tracker_id=tid if isinstance(tid, bytes) and len(tid) <= 256 else None,
        warning=clean_text(warning) if isinstance(warning, bytes) else None,
    )


def parse_scrape(body: bytes) -> dict[bytes, ScrapeStats]:
    """Validate a scrape response body (BEP 48): info-hash -> counts. Bad entries are skipped."""
    d = _decode_dict(body)
    failure = d.get(b"failure reason")
    if failure is not None:
        text = clean_text(failure) if isinstance(failure, (bytes, str)) else "unreadable failure reason"
        raise TrackerError(f"tracker failure: {text}", failure_reason=text)
    files = d.get(b"files")
    if not isinstance(files, dict):
        raise TrackerError("scrape response has no files dictionary")
    out: dict[bytes, ScrapeStats] = {}
    for ih, stats in files.items():
        if len(ih) != INFO_HASH_SIZE or not isinstance(stats, dict):
            continue
        out[ih] = ScrapeStats(
            complete=_count(stats, b"complete") or 0,
            downloaded=_count(stats, b"downloaded") or 0,
            incomplete=_count(stats, b"incomplete") or 0,
        )
    return out
