"""PeerConnection: one peer wire connection as a sans-IO state machine (the h11 / aioquic shape).

Theory of operation
-------------------
Bytes go in with :meth:`PeerConnection.receive_data` (or, with no copy, :meth:`get_buffer` /
:meth:`buffer_updated` from an ``asyncio.BufferedProtocol``); ``receive_data(b"")`` means end of stream. Events
come out of :meth:`next_event` until it returns None. Bytes to write come back from every ``send``-style method,
and replies the connection makes on its own (BEP 6 rejects for requests it refuses) from :meth:`data_to_send`,
which the adapter drains after the events. One timer: :meth:`get_timer` gives the next deadline,
:meth:`handle_timer` returns keep-alive bytes when one is due and queues ``ConnectionClosed`` on a timeout.

States::

    initiator:  initiate() -> our handshake ... peer's 68 bytes -> Handshaken -> OPEN
    acceptor:   peer's first 48 bytes -> HandshakeReceived(info_hash, reserved)
                accept(info_hash, num_pieces=...) -> our handshake ... peer id -> Handshaken -> OPEN
    any:        ProtocolViolation / ConnectionClosed -> CLOSED (next_event() returns None from then on)

The acceptor reads the info-hash before answering, so one listener can route many torrents: it answers
``HandshakeReceived`` with :meth:`accept` (or drops the socket for an unknown info-hash).

In OPEN the connection keeps the four choke/interest flags, the peer's bitfield, our requests to the peer (a piece
we never asked for is ``UNSOLICITED_PIECE``; one we cancelled, or lost to a non-fast choke, is still accepted), the
peer's requests to us (bounded by ``max_pending_requests``; refused ones get a BEP 6 reject and count towards
``max_invalid_requests``), the allowed-fast sets, and the BEP 10 extension maps. Every length and field is checked;
a violation becomes a terminal ``ProtocolViolation(reason, ban, message)`` event.

For magnets pass ``num_pieces=None``; the peer's bitfield and haves are kept raw until :meth:`set_num_pieces`.

Time comes in as ``now`` arguments; pass ``now`` to ``receive_data`` so the inactivity timer is exact (without it
the data counts as received at the next ``handle_timer``). Only complete messages (keep-alives included) count as
activity, so a peer dripping one byte at a time still times out. Sends are stamped with the latest ``now`` seen, which
can only make keep-alives early, never late.
"""

from __future__ import annotations

import logging
import struct
from collections import deque

from shoal.config import Settings
from shoal.errors import DisconnectReason, LocalProtocolError, PeerProtocolError
from shoal.policy.bitfield import Bitfield, bitfield_size
from shoal.wire import events as ev
from shoal.wire import messages as m
from shoal.wire.extension import (
    DEFAULT_EXTENSIONS,
    UT_METADATA,
    UT_PEX,
    ExtensionHandshake,
    decode_extension_handshake,
    encode_extension_handshake,
)
from shoal.wire.framing import KEEPALIVE_ID, FrameReader
from shoal.wire.handshake import (
    HANDSHAKE_SIZE,
    INFO_HASH_END,
    Reserved,
    check_prefix,
    encode_handshake,
)
from shoal.wire.metadata import (
    MetadataData,
    MetadataMessage,
    MetadataReject,
    MetadataRequest,
    decode_metadata_message,
    encode_metadata_message,
)
from shoal.wire.pex import PexRateLimiter, decode_pex

logger = logging.getLogger(__name__)

_II = struct.Struct(">II")
_III = struct.Struct(">III")
_I = struct.Struct(">I")
_H = struct.Struct(">H")

Key = tuple[int, int, int]

HANDSHAKE = "handshake"
WAIT_ACCEPT = "wait-accept"
PEER_ID = "peer-id"
OPEN = "open"
CLOSED = "closed"


class PeerConnection:
    """One peer connection; see the module docstring for the protocol and the API."""

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
        "_peer_requests",
        "_pex_limiter",
        "_reader",
        "_rx_time",
        "_state",
        "am_choking",
        "am_interested",
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
        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False
        self._reader = FrameReader(s.max_message_size)
        self._state = HANDSHAKE
        self._events: deque[ev.Event] = deque()
        self._outgoing = bytearray()
        self._now = now
        self._created = now
        self._eof = False
        self._last_received: float | None = now
        self._rx_time: float | None = now
        self._last_sent = now
        self._peer_bitfield: Bitfield | None = None
        self._peer_have_raw: tuple[bytes | None, set[int]] = (None, set())
        self._got_bitfield = False
        self._our_have: Bitfield | None = None
        self._our_requests: dict[Key, None] = {}
        self._late: dict[Key, None] = {}
        self._peer_requests: dict[Key, None] = {}
        self._allowed_fast_in: set[int] = set()
        self._allowed_fast_out: set[int] = set()
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

    # ================================================================= handshake

    def initiate(self) -> bytes:
        """Our handshake (initiating side)."""
        if not self.initiator or self.info_hash is None:
            raise LocalProtocolError("initiate() is for the initiating side")
        return self._stamp(encode_handshake(self.info_hash, self.our_peer_id, self.reserved))

    def accept(
        self,
        info_hash: bytes | None = None,
        num_pieces: int | None = None,
        *,
        piece_length: int | None = None,
        total_length: int | None = None,
        metadata_size: int | None = None,
    ) -> bytes:
        """Answer ``HandshakeReceived``: take the torrent and return our handshake (accepting side)."""
        if self._state != WAIT_ACCEPT:
            raise LocalProtocolError(f"accept() in state {self._state}")
        if info_hash is not None:
            self.info_hash = info_hash
        if num_pieces is not None:
            self.num_pieces = num_pieces
        self.piece_length = piece_length if piece_length is not None else self.piece_length
        self.total_length = total_length if total_length is not None else self.total_length
        self.metadata_size = metadata_size if metadata_size is not None else self.metadata_size
        assert self.info_hash is not None
        self._state = PEER_ID
        return self._stamp(encode_handshake(self.info_hash, self.our_peer_id, self.reserved))

    def _read_handshake(self) -> ev.Event | None:
        reader = self._reader
        if self._state == HANDSHAKE:
            check_prefix(reader.peek(20))
            if len(reader) < INFO_HASH_END:
                return None
            head = reader.peek(INFO_HASH_END)
            reserved = Reserved.from_bytes(head[20:28])
            info_hash = head[28:48]
            self.peer_reserved = reserved
            if self.initiator:
                if info_hash != self.info_hash:
                    raise PeerProtocolError(
                        f"peer answered info-hash {info_hash.hex()}, expected {(self.info_hash or b'').hex()}",
                        DisconnectReason.WRONG_INFO_HASH,
                    )
                self._state = PEER_ID
            else:
                if self.info_hash is not None and info_hash != self.info_hash:
                    raise PeerProtocolError(
                        f"peer asked for info-hash {info_hash.hex()}, expected {self.info_hash.hex()}",
                        DisconnectReason.WRONG_INFO_HASH,
                    )
                self._state = WAIT_ACCEPT
                return ev.HandshakeReceived(info_hash, reserved)
        if self._state == PEER_ID:
            raw = reader.take(HANDSHAKE_SIZE)
            if raw is None:
                return None
            peer_id = raw[48:68]
            if peer_id == self.our_peer_id:
                raise PeerProtocolError("connected to ourselves", DisconnectReason.SELF_CONNECTION)
            self.peer_id = peer_id
            self._open()
            assert self.info_hash is not None
            return ev.Handshaken(peer_id, self.peer_reserved, self.info_hash)
        return None

    def _open(self) -> None:
        self._state = OPEN
        s = self.settings
        limits = self._reader.payload_limits
        limits[m.PIECE] = 8 + s.max_request_length
        limits[m.EXTENDED] = s.max_extended_message_size
        pieces = self.num_pieces if self.num_pieces is not None else s.max_piece_count
        limits[m.BITFIELD] = bitfield_size(pieces)
        if self.num_pieces is not None:
            self._peer_bitfield = Bitfield(self.num_pieces)

    # ================================================================= input

    def receive_data(self, data: bytes | bytearray | memoryview, now: float | None = None) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed the stream."""
        if self._state == CLOSED:
            return
        if now is not None:
            self._now = now
        self._rx_time = now
        if not data:
            self._eof = True  # reported once the buffered messages are consumed
            return
        self._reader.feed(data)

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Receive straight into the connection's buffer (``asyncio.BufferedProtocol``)."""
        return self._reader.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int, now: float | None = None) -> None:
        if now is not None:
            self._now = now
        self._rx_time = now
        self._reader.buffer_updated(nbytes)

    def next_event(self) -> ev.Event | None:
        """The next event, or None when more bytes are needed (or the connection is closed)."""
        events = self._events
        if events:
            return events.popleft()
        state = self._state
        if state != OPEN:
            if state in (CLOSED, WAIT_ACCEPT):
                return None
            try:
                event = self._read_handshake()
            except PeerProtocolError as exc:
                return self._violation(exc)
            if event is None and self._eof and self._state != WAIT_ACCEPT:
                return self._eof_event()
            return event
        reader = self._reader
        try:
            while True:
                frame = reader.next_frame()
                if frame is None:
                    return self._eof_event() if self._eof else None
                self._last_received = self._rx_time  # whole messages count as activity, dripped bytes do not
                msg_id, start, end = frame
                if msg_id == m.PIECE:
                    buf = reader.buffer
                    piece, offset = _II.unpack_from(buf, start)
                    key = (piece, offset, end - start - 8)
                    if key in self._our_requests:
                        del self._our_requests[key]
                    elif key in self._late:
                        del self._late[key]
                    else:
                        raise PeerProtocolError(
                            f"unsolicited piece {piece} offset {offset} length {key[2]}",
                            DisconnectReason.UNSOLICITED_PIECE,
                        )
                    return ev.BlockReceived(piece, offset, bytes(memoryview(buf)[start + 8 : end]))
                event = self._HANDLERS[msg_id](self, start, end)
                if event is not None:
                    return event
                if events:
                    return events.popleft()
        except PeerProtocolError as exc:
            return self._violation(exc)

    def _violation(self, exc: PeerProtocolError) -> ev.Event:
        logger.debug("peer %s violation: %s (%s)", (self.peer_id or b"").hex(), exc, exc.reason.value)
        event = ev.ProtocolViolation(exc.reason, exc.ban, str(exc))
        self._state = CLOSED
        self._events.clear()
        return event

    def _eof_event(self) -> ev.Event:
        self._state = CLOSED
        self._events.clear()
        return ev.ConnectionClosed(DisconnectReason.CLOSED_BY_PEER)

    def _close(self, event: ev.ConnectionClosed) -> None:
        self._state = CLOSED
        self._events.clear()
        self._events.append(event)

    # ----------------------------------------------------------------- message handlers

    def _payload(self, start: int, end: int) -> bytes:
        return bytes(memoryview(self._reader.buffer)[start:end])

    def _index(self, start: int, what: str) -> int:
        index: int = _I.unpack_from(self._reader.buffer, start)[0]
        if self.num_pieces is not None and index >= self.num_pieces:
            raise PeerProtocolError(
                f"{what} for piece {index} out of range 0..{self.num_pieces - 1}",
                DisconnectReason.PROTOCOL_VIOLATION,
            )
        return index

    def _require_fast(self, msg_id: int) -> None:
        if not self.fast:
            raise PeerProtocolError(
                f"{m.message_name(msg_id)} message without the fast extension",
                DisconnectReason.PROTOCOL_VIOLATION,
            )

    def _on_keepalive(self, start: int, end: int) -> ev.Event | None:
        return ev.KeepAliveReceived()

    def _on_choke(self, start: int, end: int) -> ev.Event | None:
        if self.peer_choking:
            return None
        self.peer_choking = True
        if self.fast:
            return ev.PeerChoked()
        dropped = tuple(self._our_requests)
        for key in dropped:
            self._remember_late(key)
        self._our_requests.clear()
        return ev.PeerChoked(dropped)

    def _on_unchoke(self, start: int, end: int) -> ev.Event | None:
        if not self.peer_choking:
            return None
        self.peer_choking = False
        return ev.PeerUnchoked()

    def _on_interested(self, start: int, end: int) -> ev.Event | None:
        if self.peer_interested:
            return None
        self.peer_interested = True
        return ev.PeerInterested()

    def _on_not_interested(self, start: int, end: int) -> ev.Event | None:
        if not self.peer_interested:
            return None
        self.peer_interested = False
        return ev.PeerNotInterested()

    def _on_have(self, start: int, end: int) -> ev.Event | None:
        index = self._index(start, "have")
        bf = self._peer_bitfield
        if bf is None:
            raw = self._peer_have_raw[1]
            if index in raw or len(raw) >= self.settings.max_piece_count:
                return None
            raw.add(index)
            return ev.HaveReceived(index)
        if bf.add(index):
            return ev.HaveReceived(index)
        return None

    def _check_first_bitfield(self, msg_id: int) -> None:
        if self._got_bitfield:
            raise PeerProtocolError(
                f"{m.message_name(msg_id)} message after the peer's piece set was already sent",
                DisconnectReason.BAD_BITFIELD,
            )
        self._got_bitfield = True

    def _on_bitfield(self, start: int, end: int) -> ev.Event | None:
        self._check_first_bitfield(m.BITFIELD)
        data = self._payload(start, end)
        if self.num_pieces is None:
            self._peer_have_raw = (data, self._peer_have_raw[1])
            return None
        bf = Bitfield.from_bytes(data, self.num_pieces)
        if self._peer_bitfield is not None and not self._peer_bitfield.is_empty:
            bf = bf | self._peer_bitfield
        self._peer_bitfield = bf
        return ev.BitfieldReceived(bf.copy())

    def _on_have_all(self, start: int, end: int) -> ev.Event | None:
        self._require_fast(m.HAVE_ALL)
        self._check_first_bitfield(m.HAVE_ALL)
        if self.num_pieces is None:
            self._peer_have_raw = (b"all", self._peer_have_raw[1])
            return None
        self._peer_bitfield = Bitfield(self.num_pieces, full=True)
        return ev.BitfieldReceived(self._peer_bitfield.copy())

    def _on_have_none(self, start: int, end: int) -> ev.Event | None:
        self._require_fast(m.HAVE_NONE)
        self._check_first_bitfield(m.HAVE_NONE)
        if self.num_pieces is None:
            return None
        if self._peer_bitfield is None:
            self._peer_bitfield = Bitfield(self.num_pieces)
        return ev.BitfieldReceived(self._peer_bitfield.copy())

    def _on_request(self, start: int, end: int) -> ev.Event | None:
        piece, offset, length = key = _III.unpack_from(self._reader.buffer, start)
        s = self.settings
        if length == 0 or length > s.max_request_length:
            raise PeerProtocolError(
                f"request length {length} not in 1..max_request_length {s.max_request_length}",
                DisconnectReason.INVALID_REQUEST,
            )
        if self.num_pieces is not None and piece >= self.num_pieces:
            raise PeerProtocolError(
                f"request for piece {piece} out of range 0..{self.num_pieces - 1}",
                DisconnectReason.INVALID_REQUEST,
            )
        size = self.piece_size(piece)
        if size is not None and offset + length > size:
            raise PeerProtocolError(
                f"request offset {offset} length {length} past the end of piece {piece} of {size} bytes",
                DisconnectReason.INVALID_REQUEST,
            )
        if key in self._peer_requests:
            return None
        have = self._our_have
        refused = (
            have is None
            or piece not in have
            or (self.am_choking and piece not in self._allowed_fast_out)
            or len(self._peer_requests) >= s.max_pending_requests
        )
        if refused:
            self._invalid_requests += 1
            if self._invalid_requests > s.max_invalid_requests:
                raise PeerProtocolError(
                    f"{self._invalid_requests} refused requests exceed max_invalid_requests {s.max_invalid_requests}",
                    DisconnectReason.TOO_MANY_REQUESTS,
                )
            if self.fast:
                self._outgoing += m.encode_request(m.REJECT, piece, offset, length)
            return None
        self._peer_requests[key] = None
        return ev.BlockRequested(piece, offset, length)

    def _on_cancel(self, start: int, end: int) -> ev.Event | None:
        piece, offset, length = key = _III.unpack_from(self._reader.buffer, start)
        if key not in self._peer_requests:
            return None
        del self._peer_requests[key]
        if self.fast:
            self._outgoing += m.encode_request(m.REJECT, piece, offset, length)
        return ev.RequestCancelled(piece, offset, length)

    def _on_reject(self, start: int, end: int) -> ev.Event | None:
        self._require_fast(m.REJECT)
        piece, offset, length = key = _III.unpack_from(self._reader.buffer, start)
        if key in self._our_requests:
            del self._our_requests[key]
        elif key in self._late:
            del self._late[key]
        else:
            raise PeerProtocolError(
                f"reject for piece {piece} offset {offset} length {length} that was never requested",
                DisconnectReason.PROTOCOL_VIOLATION,
            )
        return ev.Rejected(piece, offset, length)

    def _on_port(self, start: int, end: int) -> ev.Event | None:
        return ev.DhtPortReceived(_H.unpack_from(self._reader.buffer, start)[0])

    def _on_suggest(self, start: int, end: int) -> ev.Event | None:
        self._require_fast(m.SUGGEST)
        return ev.Suggested(self._index(start, "suggest"))

    def _on_allowed_fast(self, start: int, end: int) -> ev.Event | None:
        self._require_fast(m.ALLOWED_FAST)
        index = self._index(start, "allowed fast")
        if (
            index in self._allowed_fast_in
            or len(self._allowed_fast_in) >= self.settings.max_allowed_fast_received
        ):
            return None
        self._allowed_fast_in.add(index)
        return ev.AllowedFastReceived(index)

    def _on_extended(self, start: int, end: int) -> ev.Event | None:
        if not self.supports_extensions:
            raise PeerProtocolError(
                "extended message without the extension protocol bit", DisconnectReason.PROTOCOL_VIOLATION
            )
        payload = self._payload(start, end)
        ext_id = payload[0]
        s = self.settings
        if ext_id == 0:
            hs = decode_extension_handshake(
                payload[1:], max_metadata_size=s.max_metadata_size, max_reqq=s.max_outstanding_requests
            )
            self.peer_extensions = self.peer_extensions.merge(hs)
            return ev.ExtensionHandshaken(hs)
        name = next((n for n, i in self.extensions.items() if i == ext_id), None)
        if name is None:
            return None  # unknown extended messages are ignored (BEP 10)
        if name == UT_METADATA:
            msg = decode_metadata_message(payload[1:], max_metadata_size=s.max_metadata_size)
            if isinstance(msg, MetadataRequest):
                return ev.MetadataRequested(msg.piece)
            if isinstance(msg, MetadataData):
                return ev.MetadataPieceReceived(msg.piece, msg.total_size, msg.data)
            if isinstance(msg, MetadataReject):
                return ev.MetadataRejected(msg.piece)
            return None
        if name == UT_PEX:
            if not self._pex_limiter.allow(self._now):
                return None  # BEP 11: at most one per minute; floods are dropped
            pex = decode_pex(payload[1:], max_peers=s.max_pex_peers)
            return ev.PexReceived(pex.added, pex.dropped)
        return ev.ExtendedReceived(name, payload[1:])

    _HANDLERS = {
        KEEPALIVE_ID: _on_keepalive,
        m.CHOKE: _on_choke,
        m.UNCHOKE: _on_unchoke,
        m.INTERESTED: _on_interested,
        m.NOT_INTERESTED: _on_not_interested,
        m.HAVE: _on_have,
        m.BITFIELD: _on_bitfield,
        m.REQUEST: _on_request,
        m.CANCEL: _on_cancel,
        m.PORT: _on_port,
        m.SUGGEST: _on_suggest,
        m.HAVE_ALL: _on_have_all,
        m.HAVE_NONE: _on_have_none,
        m.REJECT: _on_reject,
        m.ALLOWED_FAST: _on_allowed_fast,
        m.EXTENDED: _on_extended,
    }

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

    def set_num_pieces(
        self, num_pieces: int, *, piece_length: int | None = None, total_length: int | None = None
    ) -> None:
        """The metadata arrived (magnet): check the peer's stored bitfield and haves against it.

        A stored bitfield of the wrong size, or a have out of range, queues a ``ProtocolViolation``.
        """
        if self.num_pieces is not None:
            raise LocalProtocolError("num_pieces is already known")
        self.num_pieces = num_pieces
        self.piece_length = piece_length
        self.total_length = total_length
        if self._state != OPEN:
            return
        self._reader.payload_limits[m.BITFIELD] = bitfield_size(num_pieces)
        raw, haves = self._peer_have_raw
        self._peer_have_raw = (None, set())
        try:
            if raw == b"all":
                bf = Bitfield(num_pieces, full=True)
            elif raw is not None:
                bf = Bitfield.from_bytes(raw, num_pieces)
            else:
                bf = Bitfield(num_pieces)
            for index in haves:
                if index >= num_pieces:
                    raise PeerProtocolError(
                        f"have for piece {index} out of range 0..{num_pieces - 1}",
                        DisconnectReason.PROTOCOL_VIOLATION,
                    )
                bf.add(index)
        except PeerProtocolError as exc:
            self._events.append(self._violation(exc))
            return
        self._peer_bitfield = bf
        self._events.append(ev.BitfieldReceived(bf.copy()))

    # ================================================================= output

    def _stamp(self, data: bytes) -> bytes:
        self._last_sent = self._now
        return data

    def _check_open(self) -> None:
        if self._state != OPEN:
            raise LocalProtocolError(f"cannot send in state {self._state}")

    def data_to_send(self) -> bytes:
        """Replies the connection made by itself (BEP 6 rejects); write them after draining the events."""
        if not self._outgoing:
            return b""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return self._stamp(data)

    def send(self, msg: m.Message) -> bytes:
        """Encode ``msg`` and update the connection state for it; returns the bytes to write."""
        self._check_open()
        sender = self._SENDERS.get(type(msg))
        if sender is not None:
            return self._stamp(sender(self, msg))
        return self._stamp(msg.encode())

    def _send_choke(self, msg: m.Message) -> bytes:
        self.am_choking = True
        out = msg.encode()
        pending = self._peer_requests
        if self.fast:
            keep = {k: None for k in pending if k[0] in self._allowed_fast_out}
            out += b"".join(m.encode_request(m.REJECT, *k) for k in pending if k not in keep)
            self._peer_requests = keep
        else:
            pending.clear()
        return out

    def _send_unchoke(self, msg: m.Message) -> bytes:
        self.am_choking = False
        return msg.encode()

    def _send_interested(self, msg: m.Message) -> bytes:
        self.am_interested = True
        return msg.encode()

    def _send_not_interested(self, msg: m.Message) -> bytes:
        self.am_interested = False
        return msg.encode()

    def _our_bitfield(self) -> Bitfield:
        if self.num_pieces is None:
            raise LocalProtocolError("num_pieces is not known yet")
        if self._our_have is None:
            self._our_have = Bitfield(self.num_pieces)
        return self._our_have

    def _send_have(self, msg: m.Message) -> bytes:
        assert isinstance(msg, m.Have)
        self._our_bitfield().add(msg.piece)
        return msg.encode()

    def _send_bitfield(self, msg: m.Message) -> bytes:
        assert isinstance(msg, m.Bitfield)
        if self.num_pieces is None:
            raise LocalProtocolError("num_pieces is not known yet")
        self._our_have = Bitfield.from_bytes(msg.data, self.num_pieces)
        return msg.encode()

    def _send_have_all(self, msg: m.Message) -> bytes:
        self._local_fast(msg)
        self._our_have = Bitfield(self._our_bitfield().num_pieces, full=True)
        return msg.encode()

    def _local_fast(self, msg: m.Message) -> None:
        if not self.fast:
            raise LocalProtocolError(f"{type(msg).__name__} needs the fast extension on both sides")

    def _send_fast_only(self, msg: m.Message) -> bytes:
        self._local_fast(msg)
        if isinstance(msg, m.AllowedFast):
            self._allowed_fast_out.add(msg.piece)
        elif isinstance(msg, m.Reject):
            self._peer_requests.pop((msg.piece, msg.offset, msg.length), None)
        return msg.encode()

    def _send_request(self, msg: m.Message) -> bytes:
        assert isinstance(msg, m.Request)
        return self.request(msg.piece, msg.offset, msg.length)

    def _send_cancel(self, msg: m.Message) -> bytes:
        assert isinstance(msg, m.Cancel)
        return self.cancel(msg.piece, msg.offset, msg.length)

    def _send_piece(self, msg: m.Message) -> bytes:
        assert isinstance(msg, m.Piece)
        key = (msg.piece, msg.offset, len(msg.data))
        if key not in self._peer_requests:
            raise LocalProtocolError(f"piece {key} was not requested by the peer (or was cancelled)")
        del self._peer_requests[key]
        return msg.encode()

    _SENDERS = {
        m.Choke: _send_choke,
        m.Unchoke: _send_unchoke,
        m.Interested: _send_interested,
        m.NotInterested: _send_not_interested,
        m.Have: _send_have,
        m.Bitfield: _send_bitfield,
        m.HaveAll: _send_have_all,
        m.HaveNone: _send_fast_only,
        m.Suggest: _send_fast_only,
        m.AllowedFast: _send_fast_only,
        m.Reject: _send_fast_only,
        m.Request: _send_request,
        m.Cancel: _send_cancel,
        m.Piece: _send_piece,
    }

    # ----------------------------------------------------------------- conveniences (hot paths avoid dataclasses)

    def request(self, piece: int, offset: int, length: int) -> bytes:
        """Request a block; it enters the ledger so its piece is accepted when it arrives."""
        self._check_open()
        if self.peer_choking and piece not in self._allowed_fast_in:
            raise LocalProtocolError(f"request for piece {piece} while the peer chokes us (not allowed fast)")
        if len(self._our_requests) >= self.settings.max_outstanding_requests:
            raise LocalProtocolError(
                f"{len(self._our_requests)} outstanding requests reach max_outstanding_requests"
                f" {self.settings.max_outstanding_requests}"
            )
        self._our_requests[(piece, offset, length)] = None
        return self._stamp(m.encode_request(m.REQUEST, piece, offset, length))

    def cancel(self, piece: int, offset: int, length: int) -> bytes:
        """Cancel one of our requests; a piece that still arrives for it is accepted. b"" if not pending."""
        self._check_open()
        key = (piece, offset, length)
        if key not in self._our_requests:
            return b""
        del self._our_requests[key]
        self._remember_late(key)
        return self._stamp(m.encode_request(m.CANCEL, piece, offset, length))

    def send_block(self, piece: int, offset: int, data: bytes) -> bytes:
        """Serve a block the peer requested; b"" if the request is gone (cancelled, or dropped by a choke)."""
        key = (piece, offset, len(data))
        if key not in self._peer_requests:
            return b""
        del self._peer_requests[key]
        return self._stamp(m.encode_piece_header(piece, offset, len(data)) + data)

    def is_requested(self, piece: int, offset: int, length: int) -> bool:
        """Whether the peer still wants this block from us."""
        return (piece, offset, length) in self._peer_requests

    def send_have_state(self, have: Bitfield) -> bytes:
        """Our first piece-set message: have-all / have-none with the fast extension, else a bitfield (or nothing
        when we have no pieces)."""
        self._check_open()
        if self.fast and have.is_full:
            return self.send(m.HaveAll())
        if self.fast and have.is_empty:
            self._our_have = have.copy()
            return self._stamp(m.HaveNone().encode())
        if have.is_empty:
            self._our_have = have.copy()
            return b""
        return self.send(m.Bitfield(have.to_bytes()))

    def send_extension_handshake(
        self, *, p: int | None = None, yourip: bytes | None = None, upload_only: bool = False
    ) -> bytes:
        """Our BEP 10 handshake: our extension ids, ``reqq`` = ``max_pending_requests``, ``metadata_size``."""
        self._check_open()
        if not self.supports_extensions:
            raise LocalProtocolError("the peer does not support the extension protocol")
        payload = encode_extension_handshake(
            self.extensions,
            p=p,
            reqq=self.settings.max_pending_requests,
            yourip=yourip,
            metadata_size=self.metadata_size,
            upload_only=upload_only,
        )
        return self._stamp(m.Extended(0, payload).encode())

    def send_extended(self, name: str, payload: bytes) -> bytes:
        """An extended message on the id the peer chose for ``name``."""
        self._check_open()
        ext_id = self.peer_extension_id(name)
        if ext_id is None or not self.supports_extensions:
            raise LocalProtocolError(f"the peer does not support extension {name}")
        return self._stamp(m.Extended(ext_id, payload).encode())

    def send_metadata(self, msg: MetadataMessage) -> bytes:
        return self.send_extended(UT_METADATA, encode_metadata_message(msg))

    def send_pex(self, payload: bytes) -> bytes:
        """A ut_pex payload built by :class:`shoal.wire.pex.PexSender` (which applies the rate limit)."""
        return self.send_extended(UT_PEX, payload)

    # ================================================================= timers

    def get_timer(self) -> float | None:
        """The next deadline (handshake timeout, inactivity timeout or keep-alive), or None when closed."""
        if self._state == CLOSED:
            return None
        s = self.settings
        if self._state != OPEN:
            return self._created + s.handshake_timeout
        received = self._last_received if self._last_received is not None else self._now
        return min(received + s.peer_inactivity_timeout, self._last_sent + s.keepalive_interval)

    def handle_timer(self, now: float) -> bytes:
        """Act on deadlines that passed: returns a keep-alive when one is due; queues ``ConnectionClosed`` on a
        handshake or inactivity timeout."""
        if self._state == CLOSED:
            return b""
        self._now = now
        if self._last_received is None:
            self._last_received = now
        s = self.settings
        if self._state != OPEN:
            if now >= self._created + s.handshake_timeout:
                self._close(ev.ConnectionClosed(DisconnectReason.TIMEOUT))
            return b""
        if now >= self._last_received + s.peer_inactivity_timeout:
            self._close(ev.ConnectionClosed(DisconnectReason.INACTIVE))
            return b""
        if now >= self._last_sent + s.keepalive_interval:
            return self._stamp(m.KEEPALIVE_BYTES)
        return b""
