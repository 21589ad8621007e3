"""ut_metadata (BEP 9): messages, a multi-peer fetcher and a server, all sans-IO.

A message is a bencoded dictionary ``{msg_type, piece[, total_size]}``; a data message (``msg_type`` 1) is
followed by the raw metadata piece. Metadata is cut into 16 KiB pieces; the last may be shorter.

:class:`MetadataFetcher` collects pieces from several peers (any hashable key identifies a peer), remembers who
sent which piece, and on completion checks the info dictionary against the info-hash (SHA-1 for v1, or an injected
``verify`` callable, e.g. for a v2 SHA-256 info-hash). A bad result resets the fetch and names every contributor.
:class:`MetadataServer` answers requests from our raw info bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import field

from shoal.codec import bencode
from shoal.errors import BencodeError, DisconnectReason, LocalProtocolError, PeerProtocolError
from shoal.records import record

METADATA_PIECE_SIZE = 16 * 1024
MSG_REQUEST = 0
MSG_DATA = 1
MSG_REJECT = 2


@record
class MetadataRequest:
    piece: int


@record
class MetadataData:
    piece: int
    total_size: int
    data: bytes


@record
class MetadataReject:
    piece: int


MetadataMessage = MetadataRequest | MetadataData | MetadataReject


def metadata_piece_count(total_size: int) -> int:
    return (total_size + METADATA_PIECE_SIZE - 1) // METADATA_PIECE_SIZE


def metadata_piece_length(total_size: int, piece: int) -> int:
    return min(METADATA_PIECE_SIZE, total_size - piece * METADATA_PIECE_SIZE)


def encode_metadata_message(msg: MetadataMessage) -> bytes:
    """The extended-message payload (bencoded dictionary, plus the piece bytes for a data message)."""
    if isinstance(msg, MetadataRequest):
        return bencode.encode({b"msg_type": MSG_REQUEST, b"piece": msg.piece})
    if isinstance(msg, MetadataReject):
        return bencode.encode({b"msg_type": MSG_REJECT, b"piece": msg.piece})
    head = bencode.encode({b"msg_type": MSG_DATA, b"piece": msg.piece, b"total_size": msg.total_size})
    return head + msg.data


def _bad(message: str) -> PeerProtocolError:
    return PeerProtocolError(message, DisconnectReason.PROTOCOL_VIOLATION)


def decode_metadata_message(payload: bytes, *, max_metadata_size: int) -> MetadataMessage | None:
    """Parse a ut_metadata payload; None for an unknown ``msg_type`` (ignored, as BEP 9 asks).

    A data message must carry a ``total_size`` in ``1..max_metadata_size``, a piece index inside it, and exactly
    the bytes of that piece.
    """
    try:
        d, end = bencode.decode_prefix(payload, max_depth=4, strict=False)
    except BencodeError as exc:
        raise _bad(f"invalid ut_metadata message: {exc}")
    if not isinstance(d, dict):
        raise _bad(f"ut_metadata message is a {type(d).__name__}, not a dictionary")
    msg_type = d.get(b"msg_type")
    piece = d.get(b"piece")
    if not isinstance(msg_type, int) or not isinstance(piece, int):
        raise _bad("ut_metadata message without integer msg_type and piece")
    if piece < 0 or piece >= metadata_piece_count(max_metadata_size):
        raise _bad(f"ut_metadata piece {piece} out of range for max_metadata_size {max_metadata_size}")
    trailing = len(payload) - end
    if msg_type in (MSG_REQUEST, MSG_REJECT):
        if trailing:
            raise _bad(f"ut_metadata message type {msg_type} with {trailing} trailing bytes")
        return MetadataRequest(piece) if msg_type == MSG_REQUEST else MetadataReject(piece)
    if msg_type != MSG_DATA:
        return None
    total = d.get(b"total_size")
    if not isinstance(total, int) or not 0 < total <= max_metadata_size:
        raise _bad(f"ut_metadata total_size {total!r} not in 1..max_metadata_size {max_metadata_size}")
    if piece >= metadata_piece_count(total):
        raise _bad(f"ut_metadata piece {piece} out of range for total_size {total}")
    expected = metadata_piece_length(total, piece)
    if trailing != expected:
        raise _bad(f"ut_metadata piece {piece} of {trailing} bytes, expected {expected}")
    return MetadataData(piece, total, bytes(payload[end:]))


# --- fetcher ------------------------------------------------------------------------------------------------


@record
class MetadataResult:
    """Outcome of a complete fetch: ``info`` when verified, else None and the peers that contributed."""

    info: bytes | None
    contributors: frozenset[Hashable] = field(default_factory=frozenset)

    @property
    def ok(self) -> bool:
        return self.info is not None


class MetadataFetcher:
    """Collect the info dictionary from peers.

    Call :meth:`set_size` with a peer's ``metadata_size`` (from its extended handshake), then :meth:`next_request`
    for each peer with free capacity, and feed answers to :meth:`on_data` / :meth:`on_reject`. A piece whose
    request is older than ``request_timeout`` may be asked from another peer.
    """

    def __init__(
        self,
        info_hash: bytes,
        max_metadata_size: int,
        *,
        verify: Callable[[bytes], bool] | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        self.info_hash = info_hash
        self.max_metadata_size = max_metadata_size
        self.request_timeout = request_timeout
        self._verify = verify or (lambda info: hashlib.sha1(info).digest() == info_hash)
        self.total_size: int | None = None
        self._pieces: list[bytes | None] = []
        self._senders: dict[int, Hashable] = {}
        self._requested: dict[int, tuple[Hashable, float]] = {}
        self._rejected: dict[Hashable, set[int]] = {}
        self._asked: dict[Hashable, set[int]] = {}
        self.suspects: set[Hashable] = set()
        """Peers that contributed to a result that failed the hash check."""

    def set_size(self, total_size: int, peer: Hashable) -> bool:
        """Accept a size claim; True if it is usable (within limits and agreeing with the size in use)."""
        if not 0 < total_size <= self.max_metadata_size:
            return False
        if self.total_size is None:
            self.total_size = total_size
            self._pieces = [None] * metadata_piece_count(total_size)
            return True
        return total_size == self.total_size

    @property
    def num_pieces(self) -> int:
        return len(self._pieces)

    @property
    def received(self) -> int:
        return sum(1 for p in self._pieces if p is not None)

    def next_request(self, peer: Hashable, now: float) -> int | None:
        """A metadata piece to ask ``peer`` for, marked requested; None if nothing is left for it."""
        if self.total_size is None:
            return None
        rejected = self._rejected.get(peer, set())
        for index, data in enumerate(self._pieces):
            if data is not None or index in rejected:
                continue
            asked = self._requested.get(index)
            if asked is not None and asked[0] != peer and now - asked[1] < self.request_timeout:
                continue
            if asked is not None and asked[0] == peer:
                continue
            self._requested[index] = (peer, now)
            self._asked.setdefault(peer, set()).add(index)
            return index
        return None

    def on_reject(self, peer: Hashable, piece: int) -> None:
        self._rejected.setdefault(peer, set()).add(piece)
        asked = self._requested.get(piece)
        if asked is not None and asked[0] == peer:
            del self._requested[piece]

    def peer_lost(self, peer: Hashable) -> None:
        for index, (who, _) in list(self._requested.items()):
            if who == peer:
                del self._requested[index]
        self._rejected.pop(peer, None)
        self._asked.pop(peer, None)

    def on_data(self, peer: Hashable, piece: int, total_size: int, data: bytes) -> MetadataResult | None:
        """Store a piece; when the last one arrives, verify and return the result (None until then).

        A piece never asked from ``peer`` is ignored. Raises :class:`PeerProtocolError` (no ban) for a piece whose
        size disagrees with the size in use.
        """
        if piece not in self._asked.get(peer, ()):
            return None
        if total_size != self.total_size:
            raise PeerProtocolError(
                f"ut_metadata total_size {total_size} disagrees with metadata size {self.total_size}",
                DisconnectReason.PROTOCOL_VIOLATION,
            )
        if not 0 <= piece < len(self._pieces):
            raise PeerProtocolError(
                f"ut_metadata piece {piece} out of range", DisconnectReason.PROTOCOL_VIOLATION
            )
        if len(data) != metadata_piece_length(total_size, piece):
            raise PeerProtocolError(
                f"ut_metadata piece {piece} of {len(data)} bytes has the wrong size",
                DisconnectReason.PROTOCOL_VIOLATION,
            )
        self._requested.pop(piece, None)
        if self._pieces[piece] is None:
            self._pieces[piece] = data
            self._senders[piece] = peer
        if any(p is None for p in self._pieces):
            return None
        info = b"".join(p for p in self._pieces if p is not None)
        contributors = frozenset(self._senders.values())
        if self._verify(info):
            return MetadataResult(info, contributors)
        self.suspects |= contributors
        self.total_size = None
        self._pieces = []
        self._senders.clear()
        self._requested.clear()
        self._asked.clear()
        return MetadataResult(None, contributors)


class MetadataServer:
    """Answer ut_metadata requests from our raw info dictionary bytes."""

    def __init__(self, info: bytes) -> None:
        if not info:
            raise LocalProtocolError("metadata server needs non-empty info bytes")
        self.info = info
        self.total_size = len(info)
        self.num_pieces = metadata_piece_count(self.total_size)

    def respond(self, piece: int) -> MetadataData | MetadataReject:
        if not 0 <= piece < self.num_pieces:
            return MetadataReject(piece)
        start = piece * METADATA_PIECE_SIZE
        return MetadataData(piece, self.total_size, self.info[start : start + METADATA_PIECE_SIZE])
