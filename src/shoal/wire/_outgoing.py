"""The send half of :class:`~shoal.wire.connection.PeerConnection` (private module).

``send(msg)`` encodes a message and updates the state it implies (choke flags, our piece set, the request
ledgers, allowed-fast grants) through :attr:`_SENDERS`, a table keyed by message type. The conveniences
(``request``, ``cancel``, ``send_block``...) skip the dataclasses on the per-block paths.
"""

from __future__ import annotations

from collections.abc import Iterable

from shoal.errors import LocalProtocolError
from shoal.policy.bitfield import Bitfield
from shoal.wire import messages as m
from shoal.wire._base import ConnectionBase, with_piece
from shoal.wire.extension import UT_METADATA, UT_PEX, encode_extension_handshake
from shoal.wire.metadata import MetadataMessage, encode_metadata_message


class OutgoingMixin(ConnectionBase):
    """The send half: every method returns the bytes to write."""

    __slots__ = ()

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
        # requests that crossed our choke on the wire are honest races (BEP 6); count afresh per unchoke, as
        # libtorrent resets its choke-reject counter
        self._invalid_requests = 0
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
            self._allowed_fast_out = with_piece(self._allowed_fast_out, msg.piece)
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

    def request(self, piece: int, offset: int, length: int, now: float | None = None) -> bytes:
        """Request a block; it enters the ledger (made at ``now``, by default the time of the last input) so its
        piece is accepted when it arrives. b"" if already pending."""
        self._check_open()
        if self.peer_choking and piece not in self._allowed_fast_in:
            raise LocalProtocolError(f"request for piece {piece} while the peer chokes us (not allowed fast)")
        if len(self._our_requests) >= self.settings.max_outstanding_requests:
            raise LocalProtocolError(
                f"{len(self._our_requests)} outstanding requests reach max_outstanding_requests"
                f" {self.settings.max_outstanding_requests}"
            )
        key = (piece, offset, length)
        if key in self._our_requests:
            return b""
        self._our_requests[key] = self._now if now is None else now
        return self._stamp(m.encode_request(m.REQUEST, piece, offset, length))

    def request_many(self, blocks: Iterable[tuple[int, int, int]], now: float | None = None) -> bytes:
        """:meth:`request` for each ``(piece, offset, length)``, as one bytes (the per-block path of the engine).

        All or nothing: the whole batch is checked first (choke and allowed-fast, queue room), then entered."""
        self._check_open()
        ours = self._our_requests
        new = dict.fromkeys(blocks, self._now if now is None else now)  # in order, once each
        if not ours.keys().isdisjoint(new):
            new = {key: made for key, made in new.items() if key not in ours}
        if self.peer_choking:
            fast = self._allowed_fast_in
            for piece, _, _ in new:
                if piece not in fast:
                    raise LocalProtocolError(
                        f"request for piece {piece} while the peer chokes us (not allowed fast)"
                    )
        limit = self.settings.max_outstanding_requests
        if len(ours) + len(new) > limit:
            raise LocalProtocolError(
                f"{len(ours)} outstanding requests + {len(new)} exceed max_outstanding_requests {limit}"
            )
        if not new:
            return b""
        ours.update(new)
        pack = m.REQUEST_FRAME.pack  # m.encode_request without a Python call per block
        request = m.REQUEST
        return self._stamp(
            b"".join([pack(13, request, piece, offset, length) for piece, offset, length in new])
        )

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

    def send_block_header(self, piece: int, offset: int, length: int) -> bytes:
        """Like :meth:`send_block` without the data: the 13-byte header to send just before the block's bytes
        (b"" if the request is gone). The caller writes the block itself, e.g. as a view of a cached piece."""
        key = (piece, offset, length)
        if key not in self._peer_requests:
            return b""
        del self._peer_requests[key]
        return self._stamp(m.encode_piece_header(piece, offset, length))

    def is_requested(self, piece: int, offset: int, length: int) -> bool:
        """Whether the peer still wants this block from us."""
        return (piece, offset, length) in self._peer_requests

    def send_have_state(self, have: Bitfield) -> bytes:
        """Our first piece-set message: have-all / have-none with the fast extension, else a bitfield (or nothing
        when we have no pieces)."""
        self._check_open()
        if have.is_empty:  # also a magnet before its metadata: Bitfield(0)
            self._our_have = have.copy() if self.num_pieces is not None else None
            return self._stamp(m.HaveNone().encode()) if self.fast else b""
        if self.fast and have.is_full:
            return self.send(m.HaveAll())
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
