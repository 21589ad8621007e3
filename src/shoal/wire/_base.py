"""Shared state of a :class:`~shoal.wire.connection.PeerConnection` (private module).

The fields, the read-only properties and the small helpers both halves use: :mod:`shoal.wire._incoming` (message
handlers) and :mod:`shoal.wire._outgoing` (``send`` and its conveniences). The protocol and the API are described
in :mod:`shoal.wire.connection`.
"""

from __future__ import annotations

import logging
from collections.abc import Set as AbstractSet

from shoal.config import Settings
from shoal.errors import DisconnectReason, LocalProtocolError, PeerProtocolError
from shoal.policy.bitfield import Bitfield
from shoal.wire import events as ev
from shoal.wire.extension import DEFAULT_EXTENSIONS, ExtensionHandshake
from shoal.wire.framing import FrameReader
from shoal.wire.handshake import Reserved
from shoal.wire.pex import PexRateLimiter

logger = logging.getLogger(__name__)

_NO_PIECES: frozenset[int] = frozenset()


def with_piece(pieces: AbstractSet[int], piece: int) -> set[int]:
    """``pieces`` plus ``piece``, as a set of its own: the shared empty :data:`_NO_PIECES` is never changed."""
    own = pieces if isinstance(pieces, set) else set(pieces)
    own.add(piece)
    return own


Key = tuple[int, int, int]
"""A block as ``(piece, offset, length)``."""

HANDSHAKE = "handshake"
WAIT_ACCEPT = "wait-accept"
PEER_ID = "peer-id"
OPEN = "open"
CLOSED = "closed"


class ConnectionBase:
    """Fields and helpers of one peer connection."""

    __slots__ = (
        "_allowed_fast_in",
        "_allowed_fast_out",
        "_created",
        "_eof",
        "_events",
        "_got_bitfield",
        "_invalid_requests",
        "_last_received",
        "_last_sent",
        "_late",
        "_now",
        "_our_have",
        "_our_requests",
        "_outgoing",
        "_peer_bitfield",
        "_peer_have_raw",
        "_peer_info_hash",
        "_peer_requests",
        "_pex_limiter",
        "_reader",
        "_rx_time",
        "_state",
        "am_choking",
        "am_interested",
        "block_batches",
        "extensions",
        "info_hash",
        "initiator",
        "metadata_size",
        "num_pieces",
        "our_peer_id",
        "peer_choking",
        "peer_extensions",
        "peer_id",
        "peer_interested",
        "peer_reserved",
        "piece_length",
        "reserved",
        "settings",
        "total_length",
    )

    def __init__(
        self,
        info_hash: bytes | None,
        our_peer_id: bytes,
        *,
        initiator: bool,
        num_pieces: int | None = None,
        settings: Settings | None = None,
        extensions: dict[str, int] | None = None,
        metadata_size: int | None = None,
        reserved: Reserved | None = None,
        piece_length: int | None = None,
        total_length: int | None = None,
        now: float = 0.0,
        block_batches: bool = False,
    ) -> None:
        if initiator and info_hash is None:
            raise LocalProtocolError("an initiating connection needs an info-hash")
        self.settings = s = settings or Settings()
        self.info_hash = info_hash
        self.our_peer_id = our_peer_id
        self.initiator = initiator
        self.num_pieces = num_pieces
        self.piece_length = piece_length
        self.total_length = total_length
        self.extensions = dict(DEFAULT_EXTENSIONS if extensions is None else extensions)
        self.metadata_size = metadata_size
        self.reserved = reserved or Reserved.make(extension=True, fast=True)
        self.peer_id: bytes | None = None
        self.peer_reserved = Reserved(0)
        self.peer_extensions = ExtensionHandshake()
        self.block_batches = block_batches  # piece messages as BlocksReceived batches, not BlockReceived
        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False
        self._reader = FrameReader(s.max_message_size)
        self._state = HANDSHAKE
        # rarely more than one queued event (a violation, the close, a magnet bitfield): a list, not a deque
        self._events: list[ev.Event] = []
        self._outgoing = bytearray()
        self._now = now
        self._created = now
        self._eof = False
        self._last_received: float | None = now
        self._rx_time: float | None = now
        self._last_sent = now
        self._peer_bitfield: Bitfield | None = None
        self._peer_info_hash: bytes | None = None
        # magnet mode, before num_pieces is known: the raw bitfield (True for have-all) and the haves as a bit set
        # that grows to the highest index seen (at most max_piece_count bits)
        self._peer_have_raw: tuple[bytes | bool | None, bytearray] = (None, bytearray())
        self._got_bitfield = False
        self._our_have: Bitfield | None = None
        self._our_requests: dict[Key, float] = {}  # request -> when it was made (request_ledger)
        self._late: dict[Key, None] = {}
        self._peer_requests: dict[Key, None] = {}
        # BEP 6 allowed-fast pieces each way: most peers never send any, so both start as one shared empty
        # frozenset (an empty set costs 216 bytes) and become sets at their first piece
        self._allowed_fast_in: AbstractSet[int] = _NO_PIECES
        self._allowed_fast_out: AbstractSet[int] = _NO_PIECES
        self._invalid_requests = 0
        self._pex_limiter = PexRateLimiter(s.pex_interval)

    # ================================================================= properties

    @property
    def state(self) -> str:
        return self._state

    @property
    def closed(self) -> bool:
        return self._state == CLOSED

    @property
    def fast(self) -> bool:
        """Both sides set the BEP 6 bit."""
        return self.reserved.fast and self.peer_reserved.fast

    @property
    def supports_extensions(self) -> bool:
        """Both sides set the BEP 10 bit."""
        return self.reserved.extension and self.peer_reserved.extension

    @property
    def peer_bitfield(self) -> Bitfield | None:
        """The peer's pieces (None until ``num_pieces`` is known)."""
        return self._peer_bitfield

    @property
    def our_requests(self) -> list[Key]:
        """Our requests the peer has not answered, as ``(piece, offset, length)``."""
        return list(self._our_requests)

    @property
    def request_ledger(self) -> dict[Key, float]:
        """The live ledger of our unanswered requests, ``(piece, offset, length)`` -> the time each was made (the
        ``now`` given to :meth:`request_many`, else the time of the last input). The connection alone changes it
        (a request enters; an answer, a reject, a cancel or a choke without BEP 6 drops it); the engine's
        :class:`~shoal.policy.requests.RequestTracker` reads it for time-outs, so the two never disagree."""
        return self._our_requests

    @property
    def peer_requests(self) -> list[Key]:
        """The peer's requests we accepted and have not served, rejected or seen cancelled."""
        return list(self._peer_requests)

    @property
    def allowed_fast(self) -> frozenset[int]:
        """Pieces the peer lets us request while it chokes us."""
        return frozenset(self._allowed_fast_in)

    @property
    def buffered_bytes(self) -> int:
        """Bytes received and not yet turned into events (at most one message over the limits plus a read)."""
        return len(self._reader)

    @property
    def invalid_requests(self) -> int:
        return self._invalid_requests

    def peer_extension_id(self, name: str) -> int | None:
        """The id the peer wants extension ``name`` sent on, or None if it does not support it."""
        return self.peer_extensions.m.get(name)

    # ================================================================= helpers

    def _stamp(self, data: bytes) -> bytes:
        self._last_sent = self._now
        return data

    def _check_open(self) -> None:
        if self._state != OPEN:
            raise LocalProtocolError(f"cannot send in state {self._state}")

    def _violation(self, exc: PeerProtocolError) -> ev.Event:
        logger.debug("peer %s violation: %s (%s)", (self.peer_id or b"").hex(), exc, exc.reason.value)
        self._shutdown()
        return ev.ProtocolViolation(exc.reason, exc.ban, str(exc))

    def _eof_event(self) -> ev.Event:
        self._shutdown()
        return ev.ConnectionClosed(DisconnectReason.CLOSED_BY_PEER)

    def _close(self, event: ev.ConnectionClosed) -> None:
        self._shutdown()
        self._events.append(event)

    def _shutdown(self) -> None:
        """Enter CLOSED: no more events, nothing left to serve or to reply."""
        self._state = CLOSED
        self._events.clear()
        self._peer_requests.clear()
        self._outgoing.clear()

    def _remember_late(self, key: Key) -> None:
        late = self._late
        late[key] = None
        if len(late) > self.settings.max_outstanding_requests:
            del late[next(iter(late))]

    # ================================================================= torrent geometry

    def piece_size(self, piece: int) -> int | None:
        """Size of ``piece`` when the piece length (and total length for the last piece) is known."""
        if self.piece_length is None:
            return None
        if self.total_length is not None and self.num_pieces is not None and piece == self.num_pieces - 1:
            return self.total_length - piece * self.piece_length
        return self.piece_length
