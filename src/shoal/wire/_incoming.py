"""Handlers for each incoming message id (private; part of :class:`~shoal.wire.connection.PeerConnection`).

Each handler gets the payload's ``start``/``end`` in the frame buffer (already length-checked by the framing) and
returns an event, or None when the message changes nothing worth reporting. A violation raises
:class:`~shoal.errors.PeerProtocolError`, which ``next_event`` turns into a terminal ``ProtocolViolation``.
"""

from __future__ import annotations

import struct

from shoal.errors import DisconnectReason, PeerProtocolError
from shoal.policy.bitfield import Bitfield
from shoal.wire import events as ev
from shoal.wire import messages as m
from shoal.wire._base import ConnectionBase, with_piece
from shoal.wire.extension import UT_METADATA, UT_PEX, decode_extension_handshake
from shoal.wire.framing import KEEPALIVE_ID
from shoal.wire.metadata import MetadataData, MetadataReject, MetadataRequest, decode_metadata_message
from shoal.wire.pex import decode_pex

_III = struct.Struct(">III")
_I = struct.Struct(">I")
_H = struct.Struct(">H")


class IncomingMixin(ConnectionBase):
    """The receive half: one handler per message id, dispatched through :attr:`_HANDLERS`."""

    __slots__ = ()

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
        if bf is None:  # magnet: piece count unknown yet
            limit = self.settings.max_piece_count
            if index >= limit:
                raise PeerProtocolError(
                    f"have for piece {index} beyond max_piece_count {limit}",
                    DisconnectReason.PROTOCOL_VIOLATION,
                )
            bits = self._peer_have_raw[1]
            byte, mask = index >> 3, 0x80 >> (index & 7)
            if byte >= len(bits):
                bits.extend(bytes(byte + 1 - len(bits)))
            elif bits[byte] & mask:
                return None
            bits[byte] |= mask
            return ev.HaveReceived(index)
        if bf.add(index):
            return ev.HaveReceived(index)
        return None

    def _piece_set(self, bf: Bitfield) -> ev.Event | None:
        """Merge a bitfield / have-all / have-none into the peer's set; an event only when the set grew.

        A second piece-set message is tolerated, not a violation: aria2 1.36 sends one after its first (engine
        interop test ``test_aria2_downloads_from_shoal``) and libtorrent accepts it too. Sets only grow (a peer
        cannot un-have a piece without ``lt_donthave``), and a repeated or shrinking message reports nothing,
        so a flood of alternating have-all / have-none costs the engine no availability recounts.
        """
        first = not self._got_bitfield
        self._got_bitfield = True
        prev = self._peer_bitfield
        if prev is not None:
            merged = bf | prev
            if merged == prev and not first:
                return None
            bf = merged
        self._peer_bitfield = bf
        return ev.BitfieldReceived(bf.copy())

    def _on_bitfield(self, start: int, end: int) -> ev.Event | None:
        data = self._payload(start, end)
        if self.num_pieces is None:  # magnet: keep it raw (merged with an earlier one of the same size)
            self._got_bitfield = True
            prev = self._peer_have_raw[0]
            if prev is True:
                return None
            if isinstance(prev, bytes) and len(prev) == len(data):
                data = (int.from_bytes(prev, "big") | int.from_bytes(data, "big")).to_bytes(len(data), "big")
            self._peer_have_raw = (data, self._peer_have_raw[1])
            return None
        return self._piece_set(Bitfield.from_bytes(data, self.num_pieces))

    def _on_have_all(self, start: int, end: int) -> ev.Event | None:
        self._require_fast(m.HAVE_ALL)
        if self.num_pieces is None:
            self._got_bitfield = True
            self._peer_have_raw = (True, self._peer_have_raw[1])
            return None
        return self._piece_set(Bitfield(self.num_pieces, full=True))

    def _on_have_none(self, start: int, end: int) -> ev.Event | None:
        self._require_fast(m.HAVE_NONE)
        if self.num_pieces is None:
            self._got_bitfield = True
            return None
        return self._piece_set(Bitfield(self.num_pieces))

    def _on_request(self, start: int, end: int) -> ev.Event | None:
        key = self._take_request(start)
        return None if key is None else ev.BlockRequested(*key)

    def _take_request(self, start: int) -> tuple[int, int, int] | None:
        """Check the request whose payload starts at ``start``: raise for a malformed one, refuse (reject it, and
        count it) what we may not serve, ignore a repeat; else record it and return ``(piece, offset, length)``."""
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
        return key

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
            return ev.Rejected(piece, offset, length)
        if key in self._late:  # the answer to a cancel (BEP 6): nothing the engine still waits for
            del self._late[key]
            return None
        raise PeerProtocolError(
            f"reject for piece {piece} offset {offset} length {length} that was never requested",
            DisconnectReason.PROTOCOL_VIOLATION,
        )

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
        self._allowed_fast_in = with_piece(self._allowed_fast_in, index)
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
