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

API at a glance (all sends return the bytes to write)::

    conn = PeerConnection(info_hash, our_peer_id, initiator=True, num_pieces=n, piece_length=pl,
                          total_length=size, settings=settings, now=clock.now())
    transport.write(conn.initiate())
    conn.receive_data(data, now)                  # or get_buffer() / buffer_updated(nbytes, now)
    while (event := conn.next_event()) is not None: ...
    transport.write(conn.data_to_send())          # automatic rejects, after draining the events
    conn.send_have_state(bitfield); conn.send_extension_handshake(p=port)
    conn.send(Interested()); conn.send(Unchoke()); conn.send(Have(i)); conn.send(AllowedFast(i))
    conn.request(piece, offset, length)           # LocalProtocolError if choked (not allowed fast) or queue full
    conn.request_many(blocks)                     # the same for (piece, offset, length) triples, one bytes out
    conn.cancel(piece, offset, length)
    conn.send_block(piece, offset, data)          # b"" when the peer cancelled meanwhile (or we choked it)
    conn.send_metadata(msg); conn.send_pex(payload); conn.send_extended(name, payload)
    conn.get_timer(); transport.write(conn.handle_timer(now))

With ``block_batches=True`` the piece messages that arrived back to back come as one ``BlocksReceived`` (blocks as
views of the receive buffer, valid until the next input) instead of one ``BlockReceived`` each, and request
messages as one ``BlocksRequested`` instead of one ``BlockRequested`` each: the adapter's per-block fast paths.

Drain ``next_event()`` after every input: the buffer holds at most one incomplete message only then.
``accept()`` must name the info-hash the peer asked for (``LocalProtocolError`` otherwise).

Time comes in as ``now`` arguments; pass ``now`` to ``receive_data`` so the inactivity timer is exact (without it
the data counts as received at the next ``handle_timer``). Only complete messages (keep-alives included) count as
activity, so a peer dripping one byte at a time still times out. Sends are stamped with the latest ``now`` seen, which
can only make keep-alives early, never late.
"""

from __future__ import annotations

import struct

from shoal.errors import DisconnectReason, LocalProtocolError, PeerProtocolError
from shoal.policy.bitfield import Bitfield, bitfield_size
from shoal.wire import events as ev
from shoal.wire import messages as m
from shoal.wire._base import CLOSED, HANDSHAKE, OPEN, PEER_ID, WAIT_ACCEPT, Key
from shoal.wire._incoming import IncomingMixin
from shoal.wire._outgoing import OutgoingMixin
from shoal.wire.handshake import HANDSHAKE_SIZE, INFO_HASH_END, Reserved, check_prefix, encode_handshake

__all__ = ["Key", "PeerConnection"]

_II = struct.Struct(">II")


class PeerConnection(IncomingMixin, OutgoingMixin):
    """One peer connection; see the module docstring for the protocol and the API.

    The fields and helpers live in :class:`shoal.wire._base.ConnectionBase`, the message handlers in
    :mod:`shoal.wire._incoming`, ``send`` and its conveniences in :mod:`shoal.wire._outgoing`.
    """

    __slots__ = ()

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
        ih = info_hash if info_hash is not None else self.info_hash
        if ih is None:
            raise LocalProtocolError("accept() needs the info-hash of the torrent")
        if ih != self._peer_info_hash:
            raise LocalProtocolError(
                f"accept() for info-hash {ih.hex()} but the peer asked for {(self._peer_info_hash or b'').hex()}"
            )
        self.info_hash = ih
        if num_pieces is not None:
            self.num_pieces = num_pieces
        self.piece_length = piece_length if piece_length is not None else self.piece_length
        self.total_length = total_length if total_length is not None else self.total_length
        self.metadata_size = metadata_size if metadata_size is not None else self.metadata_size
        self._state = PEER_ID
        return self._stamp(encode_handshake(ih, self.our_peer_id, self.reserved))

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
                self._peer_info_hash = info_hash
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
        reader = self._reader
        reader.set_payload_limit(m.PIECE, 8 + s.max_request_length)
        reader.set_payload_limit(m.EXTENDED, s.max_extended_message_size)
        pieces = self.num_pieces if self.num_pieces is not None else s.max_piece_count
        reader.set_payload_limit(m.BITFIELD, bitfield_size(pieces))
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

    def release_idle_buffer(self) -> None:
        """Every event so far has been handled: a quiet connection gives its receive buffer back (an idle peer
        then costs no buffer; :meth:`FrameReader.release_if_quiet`). A peer we upload to (interested and
        unchoked) keeps it: it asks again soon, and a buffer allocated and zeroed anew for each of its requests
        cost ~8 % of serving a block to peers that ask for one at a time (issue 7 case 5: 40.7 -> 37.3 us)."""
        if not self._events and (self.am_choking or not self.peer_interested):
            self._reader.release_if_quiet()

    def next_event(self) -> ev.Event | None:
        """The next event, or None when more bytes are needed (or the connection is closed)."""
        events = self._events
        if events:
            return events.pop(0)
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
                if self.block_batches and (self._our_requests or self._late):  # else no piece can be ours
                    batch = self._blocks()
                    if batch is not None:
                        return batch
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
                if msg_id == m.REQUEST and self.block_batches:
                    wanted = self._requests(start)
                    if wanted:
                        return ev.BlocksRequested(wanted)
                else:
                    event = self._HANDLERS[msg_id](self, start, end)
                    if event is not None:
                        return event
                if events:
                    return events.pop(0)
        except PeerProtocolError as exc:
            return self._violation(exc)

    def _requests(self, start: int) -> list[tuple[int, int, int]]:
        """This request and the complete request messages right after it, each checked in order (block_batches
        mode); a malformed one raises, as a single one would (the connection closes, so what came before it is
        moot)."""
        take = self._take_request
        following = self._reader.next_request
        wanted: list[tuple[int, int, int]] = []
        at: int | None = start
        while at is not None:
            key = take(at)
            if key is not None:
                wanted.append(key)
            at = following()
        return wanted

    def _blocks(self) -> ev.BlocksReceived | None:
        """The piece messages at the read position that answer our requests, as one event (block_batches mode).

        Stops before the first one that does not: ``next_frame`` then reads it and raises UNSOLICITED_PIECE."""
        blocks: list[tuple[int, int, int, int]] = []
        reader = self._reader
        reader.take_pieces(blocks, self._our_requests, self._late)
        if not blocks:
            return None
        self._last_received = self._rx_time
        return ev.BlocksReceived(memoryview(reader.buffer), blocks)

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
        self._reader.set_payload_limit(m.BITFIELD, bitfield_size(num_pieces))
        raw, haves = self._peer_have_raw
        self._peer_have_raw = (None, bytearray())
        try:
            if raw is True:
                bf = Bitfield(num_pieces, full=True)
            elif isinstance(raw, bytes):
                bf = Bitfield.from_bytes(raw, num_pieces)
            else:
                bf = Bitfield(num_pieces)
            if haves:
                size = bitfield_size(num_pieces)
                spare = size * 8 - num_pieces
                tail = haves[size - 1] & ((1 << spare) - 1) if len(haves) >= size and spare else 0
                if tail or any(haves[size:]):
                    raise PeerProtocolError(
                        f"have for a piece out of range 0..{num_pieces - 1}",
                        DisconnectReason.PROTOCOL_VIOLATION,
                    )
                bf = bf | Bitfield.from_bytes(bytes(haves[:size]).ljust(size, b"\0"), num_pieces)
        except PeerProtocolError as exc:
            self._events.append(self._violation(exc))
            return
        self._peer_bitfield = bf
        self._events.append(ev.BitfieldReceived(bf.copy()))

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
        self._reader.trim()  # timers fire on quiet connections: give their buffer back
        if now >= self._last_sent + s.keepalive_interval:
            return self._stamp(m.KEEPALIVE_BYTES)
        return b""
