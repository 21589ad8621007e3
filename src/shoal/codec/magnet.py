"""Magnet URIs (BEP 9, BEP 53): parse, format, make from a torrent, and complete into a torrent.

Public API::

    Magnet.parse(uri, settings=None) -> Magnet           raises MagnetError on anything unusable
    Magnet.from_metainfo(metainfo) -> Magnet
    Magnet.to_uri() -> str
    Magnet.info_hash                                     20-byte wire hash: v1, else truncated v2
    Magnet.with_info(raw_info, settings=None) -> Metainfo   the skeleton completed with fetched metadata

Accepted parameters: ``xt`` (``urn:btih:`` with 40 hex or 32 base32 characters; ``urn:btmh:1220`` + 64 hex for a
SHA-256 v2 hash; at most one of each, a hybrid magnet has both), ``dn``, ``tr``, ``ws``, ``x.pe`` and ``so``
(BEP 53 select-only: indices and inclusive ranges, kept as ranges so ``0-999999999`` costs nothing). Numbered
variants such as ``tr.1`` count as ``tr``. Unknown parameters are ignored.

Hostile input (RELIABILITY-CASES case 27): no ``xt``, two different ``btih`` or ``btmh``, bad hex or base32 length,
an unsupported multihash, a URI longer than ``max_magnet_length``, a ``so`` index above ``max_file_count``, or a bad
``x.pe`` address raise ``MagnetError``. Filtered silently: trackers that are not http, https or udp (``file://``,
``gopher://``), web seeds that are not http or https, and everything past ``max_trackers`` trackers,
``max_web_seeds`` web seeds or ``max_magnet_peers`` peers. ``dn`` is reduced to a safe file name (path separators
become ``_``; ``.``/``..`` are dropped). Address-based checks on tracker and web-seed hosts (SSRF, case 39) belong
to the code that fetches them.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import field
from urllib.parse import quote, unquote

from shoal.codec.metainfo import InfoDict, Metainfo
from shoal.codec.metainfo_fields import ALLOWED_TRACKER_SCHEMES, ALLOWED_WEB_SEED_SCHEMES
from shoal.codec.paths import sanitize_component
from shoal.config import Settings
from shoal.errors import MagnetError, MetainfoError, ShoalError
from shoal.records import record
from shoal.types import PeerAddr

BTIH = "urn:btih:"
BTMH = "urn:btmh:"
SHA256_MULTIHASH = "1220"


@record
class Magnet:
    info_hash_v1: bytes | None = None
    info_hash_v2: bytes | None = None
    display_name: str | None = None
    trackers: list[str] = field(default_factory=list)
    web_seeds: list[str] = field(default_factory=list)
    peers: list[PeerAddr] = field(default_factory=list)
    select_only: tuple[tuple[int, int], ...] | None = None

    @property
    def info_hash(self) -> bytes:
        if self.info_hash_v1 is not None:
            return self.info_hash_v1
        assert self.info_hash_v2 is not None
        return self.info_hash_v2[:20]

    def selects(self, file_index: int) -> bool:
        """Whether BEP 53 ``so`` selects this file (everything when there is no ``so``)."""
        if self.select_only is None:
            return True
        return any(a <= file_index <= b for a, b in self.select_only)

    @classmethod
    def parse(cls, uri: str, settings: Settings | None = None) -> Magnet:
        s = settings or Settings()
        if len(uri) > s.max_magnet_length:
            raise MagnetError(
                f"magnet uri of {len(uri)} characters exceeds max_magnet_length {s.max_magnet_length}"
            )
        try:
            uri.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates, e.g. undecodable bytes in sys.argv
            raise MagnetError("magnet uri is not valid unicode text (lone surrogate)") from None
        if not uri[:8].lower() == "magnet:?":
            raise MagnetError("not a magnet uri (must start with 'magnet:?')")
        v1: bytes | None = None
        v2: bytes | None = None
        name: str | None = None
        trackers: list[str] = []
        seeds: list[str] = []
        peers: list[PeerAddr] = []
        select: tuple[tuple[int, int], ...] | None = None
        for part in uri[8:].split("&"):
            if not part:
                continue
            key, _, raw_value = part.partition("=")
            key = key.lower().split(".")[0] if not key.lower().startswith("x.") else key.lower()
            try:
                value = unquote(raw_value.replace("+", " "), errors="strict")
            except UnicodeDecodeError:
                raise MagnetError(f"magnet parameter {key!r} is not valid utf-8") from None
            if key == "xt":
                v1, v2 = _parse_xt(value, v1, v2)
            elif key == "dn":
                name = _safe_name(value)
            elif key == "tr":
                if _keep(value, ALLOWED_TRACKER_SCHEMES, trackers, s.max_trackers):
                    trackers.append(value)
            elif key == "ws":
                if _keep(value, ALLOWED_WEB_SEED_SCHEMES, seeds, s.max_web_seeds):
                    seeds.append(value)
            elif key == "x.pe":
                if len(peers) < s.max_magnet_peers:
                    peers.append(parse_peer(value))
            elif key == "so":
                select = _parse_select(value, s.max_file_count)
        if v1 is None and v2 is None:
            raise MagnetError("magnet uri has no usable xt (urn:btih or urn:btmh)")
        return cls(v1, v2, name, trackers, seeds, peers, select)

    @classmethod
    def from_metainfo(cls, m: Metainfo) -> Magnet:
        trackers = [t for tier in m.trackers for t in tier]
        return cls(m.info_hash_v1, m.info_hash_v2, m.info.name, trackers, list(m.web_seeds))

    def to_uri(self) -> str:
        parts = []
        if self.info_hash_v1 is not None:
            parts.append("xt=" + BTIH + self.info_hash_v1.hex())
        if self.info_hash_v2 is not None:
            parts.append("xt=" + BTMH + SHA256_MULTIHASH + self.info_hash_v2.hex())
        if self.display_name:
            parts.append("dn=" + quote(self.display_name, safe=""))
        parts += ["tr=" + quote(t, safe="") for t in self.trackers]
        parts += ["ws=" + quote(w, safe="") for w in self.web_seeds]
        parts += ["x.pe=" + quote(format_peer(p), safe="[]:") for p in self.peers]
        if self.select_only is not None:
            parts.append("so=" + ",".join(str(a) if a == b else f"{a}-{b}" for a, b in self.select_only))
        return "magnet:?" + "&".join(parts)

    def with_info(self, raw_info: bytes, settings: Settings | None = None) -> Metainfo:
        """Complete this magnet with its info dict (fetched over BEP 9): checks every hash the magnet names."""
        info = InfoDict.from_bytes(raw_info, settings)
        if self.info_hash_v1 is not None and info.info_hash_v1 != self.info_hash_v1:
            raise MetainfoError(f"metadata does not match v1 info-hash {self.info_hash_v1.hex()}")
        if self.info_hash_v2 is not None and info.info_hash_v2 != self.info_hash_v2:
            raise MetainfoError(f"metadata does not match v2 info-hash {self.info_hash_v2.hex()}")
        return Metainfo(
            info=info,
            info_hash_v1=info.info_hash_v1,
            info_hash_v2=info.info_hash_v2,
            trackers=[[t] for t in self.trackers],
            web_seeds=list(self.web_seeds),
        )


def _keep(url: str, schemes: tuple[str, ...], kept: list[str], limit: int) -> bool:
    return url.lower().startswith(schemes) and url not in kept and len(kept) < limit


def _parse_xt(value: str, v1: bytes | None, v2: bytes | None) -> tuple[bytes | None, bytes | None]:
    low = value.lower()
    if low.startswith(BTIH):
        digest = _btih(value[len(BTIH) :])
        if v1 is not None and v1 != digest:
            raise MagnetError("magnet uri has two different urn:btih hashes")
        return digest, v2
    if low.startswith(BTMH):
        mh = value[len(BTMH) :].lower()
        if not mh.startswith(SHA256_MULTIHASH):
            raise MagnetError(f"unsupported multihash {mh[:4]!r} in urn:btmh (only sha2-256 '1220')")
        digest = _hex(mh[4:], 32, "urn:btmh")
        if v2 is not None and v2 != digest:
            raise MagnetError("magnet uri has two different urn:btmh hashes")
        return v1, digest
    return v1, v2  # another urn (e.g. ed2k): not ours


def _hex(text: str, size: int, what: str) -> bytes:
    if len(text) != 2 * size:
        raise MagnetError(f"{what} hash has {len(text)} characters, expected {2 * size}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise MagnetError(f"{what} hash {text!r} is not hex") from None


def _btih(text: str) -> bytes:
    if len(text) == 40:
        return _hex(text, 20, "urn:btih")
    if len(text) == 32:
        try:
            return base64.b32decode(text.upper())
        except (binascii.Error, ValueError):
            raise MagnetError(f"urn:btih hash {text!r} is not base32") from None
    raise MagnetError(f"urn:btih hash has {len(text)} characters, expected 40 (hex) or 32 (base32)")


def _safe_name(value: str) -> str | None:
    cleaned = value.replace("/", "_").replace("\\", "_").replace("\x00", "")
    try:
        return sanitize_component(cleaned)
    except ShoalError:
        return None


def parse_peer(value: str) -> PeerAddr:
    """``host:port`` or ``[v6]:port`` as used in ``x.pe``."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not _decimal(port_text) or len(port_text) > 5 or not 0 < int(port_text) < 65536:
        raise MagnetError(f"bad peer address {value!r} in x.pe")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        if not host or len(host) > 253 or not all(c.isalnum() or c in "-." for c in host):
            raise MagnetError(f"bad peer address {value!r} in x.pe") from None
    return PeerAddr(host, int(port_text))


def format_peer(p: PeerAddr) -> str:
    return f"[{p.host}]:{p.port}" if ":" in p.host else f"{p.host}:{p.port}"


def _decimal(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts superscripts and other scripts' digits)."""
    return text.isascii() and text.isdigit()


def _parse_select(value: str, max_index: int) -> tuple[tuple[int, int], ...]:
    ranges: list[tuple[int, int]] = []
    items = value.split(",")
    if len(items) > max_index:
        raise MagnetError(f"so has {len(items)} items, more than max_file_count {max_index}")
    for item in items:
        a, _, b = item.partition("-")
        if not _decimal(a) or (b and not _decimal(b)) or len(a) > 12 or len(b) > 12:
            raise MagnetError(f"bad so item {item!r}")
        lo, hi = int(a), int(b or a)
        if lo > hi or hi >= max_index:
            raise MagnetError(f"so range {item!r} is reversed or beyond max_file_count {max_index}")
        ranges.append((lo, hi))
    return tuple(ranges)
