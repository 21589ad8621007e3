"""KRPC messages (BEP 5, 32, 42, 43, 51): frozen dataclasses, a strict decoder and an encoder.

Theory of operation: a datagram is one bencoded dictionary with a transaction id ``t`` and a type ``y``
(``q`` query, ``r`` response, ``e`` error). :func:`decode` checks everything a stranger controls and either
returns a :class:`Query`, :class:`Response` or :class:`Error`, or raises :class:`KrpcMessageError`:

* ``tid is None`` means the message cannot be answered (no usable ``t``, not a dictionary, too big, not
  bencode): the caller drops it silently;
* otherwise the caller may answer with an error of ``code`` (203 protocol error, 204 method unknown).

Validation lives in small per-method tables (``_QUERY_FIELDS``), not in a ladder of ifs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shoal.codec import bencode
from shoal.codec.compact import (
    NODE4_SIZE,
    NODE6_SIZE,
    CompactNode,
    decode_nodes,
    decode_peer,
    encode_nodes,
    encode_peer,
)
from shoal.errors import BencodeError, KrpcError, RemoteProtocolError
from shoal.records import record
from shoal.types import PeerAddr

ID_LENGTH = 20
CLIENT_VERSION = b"SH\x00\x01"
METHODS = ("ping", "find_node", "get_peers", "announce_peer", "sample_infohashes")
_MAX_DEPTH = 4
_MAX_TOKEN = 64
_MAX_VALUES = 2000
_MAX_SAMPLES_BYTES = 20 * 1000


class KrpcMessageError(KrpcError):
    """A KRPC datagram that breaks the protocol. ``tid`` is the transaction id to answer with, None to drop."""

    def __init__(self, message: str, code: int = KrpcError.PROTOCOL, tid: bytes | None = None) -> None:
        super().__init__(message, code)
        self.tid = tid


@record
class Query:
    tid: bytes
    method: str
    node_id: bytes
    target: bytes | None = None  # find_node, sample_infohashes
    info_hash: bytes | None = None  # get_peers, announce_peer
    port: int | None = None  # announce_peer
    implied_port: bool = False
    token: bytes | None = None
    want: frozenset[str] = frozenset()  # BEP 32: "n4", "n6"
    read_only: bool = False  # BEP 43


@record
class Response:
    tid: bytes
    node_id: bytes
    nodes: tuple[CompactNode, ...] = ()
    nodes6: tuple[CompactNode, ...] = ()
    values: tuple[PeerAddr, ...] = ()
    token: bytes | None = None
    samples: tuple[bytes, ...] = ()  # BEP 51
    num: int | None = None
    interval: int | None = None
    ip: PeerAddr | None = None  # BEP 42: the requester's address as we saw it


@record
class Error:
    tid: bytes
    code: int
    message: str


Message = Query | Response | Error


# ----------------------------------------------------------------------------------------------- decoding


def decode(data: bytes, *, max_size: int = 1500, max_tid: int = 16) -> Message:
    """Decode one KRPC datagram; raise :class:`KrpcMessageError` (see the module docstring)."""
    if len(data) > max_size:
        raise KrpcMessageError(f"datagram of {len(data)} bytes exceeds max size {max_size}")
    try:
        msg = bencode.decode(data, max_depth=_MAX_DEPTH, max_size=max_size)
    except BencodeError as exc:
        raise KrpcMessageError(f"not bencode: {exc}") from None
    if not isinstance(msg, dict):
        raise KrpcMessageError(f"message is a {type(msg).__name__}, not a dictionary")
    tid = msg.get(b"t")
    if not isinstance(tid, bytes) or not tid:
        raise KrpcMessageError("missing or invalid transaction id")
    if len(tid) > max_tid:
        raise KrpcMessageError(f"transaction id of {len(tid)} bytes exceeds max {max_tid}")
    kind = msg.get(b"y")
    try:
        if kind == b"q":
            return _decode_query(tid, msg)
        if kind == b"r":
            return _decode_response(tid, msg)
        if kind == b"e":
            return _decode_error(tid, msg)
    except RemoteProtocolError as exc:
        if isinstance(exc, KrpcMessageError):
            raise
        code = exc.code if isinstance(exc, KrpcError) else KrpcError.PROTOCOL
        raise KrpcMessageError(str(exc), code, tid) from None
    raise KrpcMessageError(f"invalid message type {kind!r}", KrpcError.PROTOCOL, tid)


def _bytes20(d: dict[bytes, Any], key: bytes) -> bytes:
    value = d.get(key)
    if not isinstance(value, bytes) or len(value) != ID_LENGTH:
        raise KrpcError(f"{key.decode()} is not a {ID_LENGTH}-byte string")
    return value


def _args_find(a: dict[bytes, Any]) -> dict[str, Any]:
    return {"target": _bytes20(a, b"target")}


def _args_get_peers(a: dict[bytes, Any]) -> dict[str, Any]:
    return {"info_hash": _bytes20(a, b"info_hash")}


def _args_announce(a: dict[bytes, Any]) -> dict[str, Any]:
    implied = a.get(b"implied_port", 0)
    if not isinstance(implied, int) or implied not in (0, 1):
        raise KrpcError(f"implied_port {implied!r} is not 0 or 1")
    port = a.get(b"port")
    if port is not None and not isinstance(port, int):
        raise KrpcError("port is not an integer")
    if not implied and (port is None or not 1 <= port <= 0xFFFF):
        raise KrpcError(f"port {port!r} out of range 1..65535")
    token = a.get(b"token")
    if not isinstance(token, bytes) or not 0 < len(token) <= _MAX_TOKEN:
        raise KrpcError(f"token missing or longer than {_MAX_TOKEN} bytes")
    return {
        "info_hash": _bytes20(a, b"info_hash"),
        "port": port if not implied else None,
        "implied_port": bool(implied),
        "token": token,
    }


_QUERY_FIELDS = {
    "ping": lambda a: {},
    "find_node": _args_find,
    "get_peers": _args_get_peers,
    "announce_peer": _args_announce,
    "sample_infohashes": _args_find,
}


def _decode_query(tid: bytes, msg: dict[bytes, Any]) -> Query:
    method = msg.get(b"q")
    args = msg.get(b"a")
    if not isinstance(method, bytes):
        raise KrpcError("missing or invalid method name 'q'")
    if not isinstance(args, dict):
        raise KrpcError("missing or invalid arguments 'a'")
    node_id = _bytes20(args, b"id")
    name = method.decode("ascii", "replace")
    fields_of = _QUERY_FIELDS.get(name)
    if fields_of is None:
        raise KrpcError(f"method unknown: {name[:32]!r}", KrpcError.METHOD_UNKNOWN)
    fields = fields_of(args)
    want_raw = args.get(b"want", [])
    want = (
        frozenset(w.decode() for w in want_raw[:4] if w in (b"n4", b"n6"))
        if isinstance(want_raw, list)
        else frozenset()
    )
    read_only = msg.get(b"ro") == 1
    return Query(tid, name, node_id, want=want, read_only=read_only, **fields)


def _nodes(r: dict[bytes, Any], key: bytes, v6: bool) -> tuple[CompactNode, ...]:
    raw = r.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, bytes):
        raise KrpcError(f"{key.decode()} is not a byte string")
    size = NODE6_SIZE if v6 else NODE4_SIZE
    if len(raw) % size:
        raise KrpcError(f"{key.decode()} of {len(raw)} bytes is not a multiple of {size}")
    return tuple(n for n in decode_nodes(raw, v6=v6) if n.addr.port != 0)


def _decode_response(tid: bytes, msg: dict[bytes, Any]) -> Response:
    r = msg.get(b"r")
    if not isinstance(r, dict):
        raise KrpcError("missing or invalid response body 'r'")
    node_id = _bytes20(r, b"id")
    values_raw = r.get(b"values", [])
    if not isinstance(values_raw, list) or len(values_raw) > _MAX_VALUES:
        raise KrpcError(f"values is not a list of at most {_MAX_VALUES} peers")
    values = []
    for v in values_raw:
        if not isinstance(v, bytes) or len(v) not in (6, 18):
            raise KrpcError("a value is not a 6- or 18-byte compact peer")
        peer = decode_peer(v)
        if peer.port != 0:
            values.append(peer)
    token = r.get(b"token")
    if token is not None and (not isinstance(token, bytes) or len(token) > _MAX_TOKEN):
        raise KrpcError(f"token is not a byte string of at most {_MAX_TOKEN} bytes")
    samples_raw = r.get(b"samples", b"")
    if (
        not isinstance(samples_raw, bytes)
        or len(samples_raw) % ID_LENGTH
        or len(samples_raw) > _MAX_SAMPLES_BYTES
    ):
        raise KrpcError("samples is not a string of 20-byte info-hashes")
    samples = tuple(samples_raw[i : i + ID_LENGTH] for i in range(0, len(samples_raw), ID_LENGTH))
    num, interval = r.get(b"num"), r.get(b"interval")
    if num is not None and not isinstance(num, int):
        raise KrpcError("num is not an integer")
    if interval is not None and not isinstance(interval, int):
        raise KrpcError("interval is not an integer")
    ip_raw = msg.get(b"ip")
    ip = decode_peer(ip_raw) if isinstance(ip_raw, bytes) and len(ip_raw) in (6, 18) else None
    return Response(
        tid,
        node_id,
        nodes=_nodes(r, b"nodes", False),
        nodes6=_nodes(r, b"nodes6", True),
        values=tuple(values),
        token=token,
        samples=samples,
        num=num,
        interval=interval,
        ip=ip,
    )


def _decode_error(tid: bytes, msg: dict[bytes, Any]) -> Error:
    e = msg.get(b"e")
    if not isinstance(e, list) or len(e) < 2 or not isinstance(e[0], int) or not isinstance(e[1], bytes):
        raise KrpcError("error body 'e' is not a list [code, message]")
    return Error(tid, e[0], e[1][:256].decode("utf-8", "replace"))


# ----------------------------------------------------------------------------------------------- encoding


def encode_query(q: Query) -> bytes:
    args: dict[bytes, Any] = {b"id": q.node_id}
    if q.target is not None:
        args[b"target"] = q.target
    if q.info_hash is not None:
        args[b"info_hash"] = q.info_hash
    if q.method == "announce_peer":
        args[b"implied_port"] = int(q.implied_port)
        args[b"port"] = q.port if q.port is not None else 0
        args[b"token"] = q.token or b""
    if q.want:
        args[b"want"] = sorted(w.encode() for w in q.want)
    msg: dict[bytes, Any] = {
        b"t": q.tid,
        b"y": b"q",
        b"q": q.method.encode(),
        b"a": args,
        b"v": CLIENT_VERSION,
    }
    if q.read_only:
        msg[b"ro"] = 1
    return bencode.encode(msg)


def encode_response(r: Response) -> bytes:
    body: dict[bytes, Any] = {b"id": r.node_id}
    if r.nodes:
        body[b"nodes"] = encode_nodes(r.nodes)
    if r.nodes6:
        body[b"nodes6"] = encode_nodes(r.nodes6, v6=True)
    if r.values:
        body[b"values"] = [encode_peer(p, v6=":" in p.host) for p in r.values]
    if r.token is not None:
        body[b"token"] = r.token
    if r.num is not None:
        body[b"num"] = r.num
    if r.interval is not None:
        body[b"interval"] = r.interval
    if r.num is not None or r.samples:
        body[b"samples"] = b"".join(r.samples)
    msg: dict[bytes, Any] = {b"t": r.tid, b"y": b"r", b"r": body, b"v": CLIENT_VERSION}
    if r.ip is not None:
        msg[b"ip"] = encode_peer(r.ip, v6=":" in r.ip.host)
    return bencode.encode(msg)


def encode_error(e: Error) -> bytes:
    return bencode.encode(
        {b"t": e.tid, b"y": b"e", b"e": [e.code, e.message.encode()[:200]], b"v": CLIENT_VERSION}
    )


def encode(msg: Message) -> bytes:
    if isinstance(msg, Query):
        return encode_query(msg)
    if isinstance(msg, Response):
        return encode_response(msg)
    return encode_error(msg)


def trim_response(r: Response) -> Response | None:
    """A smaller version of a reply that did not fit, or None when nothing optional is left."""
    if len(r.values) > 1:
        return replace(r, values=r.values[: len(r.values) // 2])
    if r.values:
        return replace(r, values=())
    if r.samples:
        return replace(r, samples=r.samples[: len(r.samples) // 2])
    if r.nodes6:
        return replace(r, nodes6=r.nodes6[: len(r.nodes6) // 2])
    if r.nodes:
        return replace(r, nodes=r.nodes[: len(r.nodes) // 2])
    return None
