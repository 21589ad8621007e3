"""BEP 10 extension protocol: the extended handshake and the extension-id map.

The handshake is a bencoded dictionary sent as extended message id 0. Keys Shoal reads:

====================  ==========================================================================================
``m``                 extension name -> id the *sender* wants to receive it on (0 disables; ids above 255 dropped)
``v``                 client name and version (UTF-8, cut to 64 characters)
``p``                 the sender's listen port (1-65535, else ignored)
``reqq``              how many requests the sender queues; clamped to ``1..max_reqq``
``yourip``            our address as the sender sees it (4 or 16 bytes, else ignored)
``metadata_size``     BEP 9 info dictionary size; ignored when not in ``1..max_metadata_size``
``upload_only``       BEP 21: the sender only uploads (a seed, or a partial seed)
====================  ==========================================================================================

Anything else is kept in ``raw``. A payload that is not a bencoded dictionary is a protocol violation. Later
handshakes update the map (``merge``), as BEP 10 allows.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from shoal.codec import bencode
from shoal.errors import BencodeError, DisconnectReason, PeerProtocolError
from shoal.records import record

UT_METADATA = "ut_metadata"
UT_PEX = "ut_pex"
DEFAULT_EXTENSIONS: dict[str, int] = {UT_METADATA: 1, UT_PEX: 2}
"""Our local ids (what we ask peers to send each extension on)."""

CLIENT_VERSION = "Shoal 0.1.0"
MAX_CLIENT_NAME = 64
MAX_EXTENSION_DEPTH = 8


@record
class ExtensionHandshake:
    m: dict[str, int] = field(default_factory=dict)
    v: str | None = None
    p: int | None = None
    reqq: int | None = None
    yourip: bytes | None = None
    metadata_size: int | None = None
    upload_only: bool = False
    raw: dict[bytes, Any] = field(default_factory=dict)

    def merge(self, newer: ExtensionHandshake) -> ExtensionHandshake:
        """A later handshake from the same peer: ids with 0 are removed, others added or replaced."""
        m = dict(self.m)
        for name in newer.raw_m_removed():
            m.pop(name, None)
        m.update(newer.m)
        return ExtensionHandshake(
            m=m,
            v=newer.v if newer.v is not None else self.v,
            p=newer.p if newer.p is not None else self.p,
            reqq=newer.reqq if newer.reqq is not None else self.reqq,
            yourip=newer.yourip if newer.yourip is not None else self.yourip,
            metadata_size=newer.metadata_size if newer.metadata_size is not None else self.metadata_size,
            upload_only=newer.upload_only,
            raw={**self.raw, **newer.raw},
        )

    def raw_m_removed(self) -> list[str]:
        m = self.raw.get(b"m")
        if not isinstance(m, dict):
            return []
        return [k.decode("utf-8", "replace") for k, v in m.items() if isinstance(k, bytes) and v == 0]


def encode_extension_handshake(
    m: dict[str, int],
    *,
    v: str | None = CLIENT_VERSION,
    p: int | None = None,
    reqq: int | None = None,
    yourip: bytes | None = None,
    metadata_size: int | None = None,
    upload_only: bool = False,
) -> bytes:
    """The bencoded payload of an extended handshake (without the message header or extended id 0)."""
    d: dict[bytes, Any] = {b"m": {k.encode(): val for k, val in m.items()}}
    if v is not None:
        d[b"v"] = v.encode()
    if p is not None:
        d[b"p"] = p
    if reqq is not None:
        d[b"reqq"] = reqq
    if yourip is not None:
        d[b"yourip"] = yourip
    if metadata_size is not None:
        d[b"metadata_size"] = metadata_size
    if upload_only:
        d[b"upload_only"] = 1
    return bencode.encode(d)


def _int(d: dict[bytes, Any], key: bytes) -> int | None:
    value = d.get(key)
    return value if isinstance(value, int) else None


def decode_extension_handshake(
    payload: bytes, *, max_metadata_size: int, max_reqq: int
) -> ExtensionHandshake:
    """Parse and clamp an extended handshake payload."""
    try:
        d = bencode.decode(payload, max_depth=MAX_EXTENSION_DEPTH, strict=False)
    except BencodeError as exc:
        raise PeerProtocolError(f"invalid extended handshake: {exc}", DisconnectReason.PROTOCOL_VIOLATION)
    if not isinstance(d, dict):
        raise PeerProtocolError(
            f"extended handshake is a {type(d).__name__}, not a dictionary",
            DisconnectReason.PROTOCOL_VIOLATION,
        )
    m: dict[str, int] = {}
    raw_m = d.get(b"m")
    if isinstance(raw_m, dict):
        for key, value in raw_m.items():
            if isinstance(key, bytes) and isinstance(value, int) and 0 < value <= 255:
                try:
                    m[key.decode("utf-8")] = value
                except UnicodeDecodeError:
                    continue
    v = d.get(b"v")
    client = v.decode("utf-8", "replace")[:MAX_CLIENT_NAME] if isinstance(v, bytes) else None
    port = _int(d, b"p")
    reqq = _int(d, b"reqq")
    yourip = d.get(b"yourip")
    size = _int(d, b"metadata_size")
    upload_only = _int(d, b"upload_only")
    return ExtensionHandshake(
        m=m,
        v=client,
        p=port if port is not None and 0 < port <= 0xFFFF else None,
        reqq=None if reqq is None else max(1, min(reqq, max_reqq)),
        yourip=yourip if isinstance(yourip, bytes) and len(yourip) in (4, 16) else None,
        metadata_size=size if size is not None and 0 < size <= max_metadata_size else None,
        upload_only=bool(upload_only),
        raw=d,
    )
