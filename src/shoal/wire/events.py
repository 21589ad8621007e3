"""Events out of :class:`shoal.wire.connection.PeerConnection`, named in the past tense.

All are slotted dataclasses, frozen except the per-block ones (``BlockReceived``, ``BlocksReceived``,
``BlockRequested``), which are plain for speed. ``ProtocolViolation`` and ``ConnectionClosed`` are terminal: after either,
``next_event()`` returns None and the adapter closes the socket.
"""

from __future__ import annotations

from dataclasses import field

from shoal.errors import DisconnectReason
from shoal.policy.bitfield import Bitfield
from shoal.records import record
from shoal.types import PeerAddr
from shoal.wire.extension import ExtensionHandshake
from shoal.wire.handshake import Reserved
from shoal.wire.pex import PexPeer


class Event:
    """Base of every connection event."""

    __slots__ = ()


@record
class HandshakeReceived(Event):
    """(Accepting side only) the peer's protocol string, reserved bits and info-hash arrived.

    Answer with ``PeerConnection.accept(info_hash, num_pieces=...)`` (which returns our handshake) or drop the
    connection. No further event comes until then.
    """

    info_hash: bytes
    reserved: Reserved


@record
class Handshaken(Event):
    """The full handshake is in: the peer's id, reserved bits and info-hash (both sides agree on it)."""

    peer_id: bytes
    reserved: Reserved
    info_hash: bytes


@record
class ExtensionHandshaken(Event):
    """BEP 10 extended handshake from the peer, parsed and clamped (this message alone; ``conn.peer_extensions``
    is the view merged over every handshake the peer sent)."""

    handshake: ExtensionHandshake


@record
class KeepAliveReceived(Event):
    pass


@record
class PeerChoked(Event):
    """The peer choked us. ``dropped`` are our requests it discarded (non-fast peers drop all of them)."""

    dropped: tuple[tuple[int, int, int], ...] = ()


@record
class PeerUnchoked(Event):
    pass


@record
class PeerInterested(Event):
    pass


@record
class PeerNotInterested(Event):
    pass


@record
class HaveReceived(Event):
    piece: int


@record
class BitfieldReceived(Event):
    """The peer's piece set from bitfield, have-all or have-none (its current copy is ``conn.peer_bitfield``)."""

    bitfield: Bitfield


@record(frozen=False)
class BlockReceived(Event):
    """A piece message answering one of our requests (or a late answer to one we cancelled or lost to a choke).

    Not frozen, on purpose: it is made once per 16 KiB block and a frozen dataclass costs ~1.2 µs more to build
    here. Treat it as read-only like the others.
    """

    piece: int
    offset: int
    data: bytes


@record(frozen=False)
class BlocksReceived(Event):
    """Piece messages that arrived back to back, as one event (only with ``PeerConnection(block_batches=True)``).

    Each entry of ``blocks`` is ``(piece, offset, start, end)``: the block's bytes are ``data[start:end]``. Every
    one answers a request of ours (or a cancelled one), checked like a single ``BlockReceived``; a piece message
    that fails the check ends the batch and is reported on the next ``next_event()``.

    ``data`` is a view of the connection's receive buffer, **valid only until the next** ``receive_data`` /
    ``get_buffer``: copy the blocks out (e.g. into their piece buffers) while handling the event. This saves a
    copy and an event per 16 KiB block. Not frozen, like ``BlockReceived``.
    """

    data: memoryview
    blocks: list[tuple[int, int, int, int]]


@record(frozen=False)
class BlockRequested(Event):
    """The peer asked for a block we may serve now (in range, advertised, and it is unchoked or allowed fast)."""

    piece: int
    offset: int
    length: int


@record(frozen=False)
class BlocksRequested(Event):
    """Request messages that arrived back to back, as one event (only with ``PeerConnection(block_batches=True)``):
    ``(piece, offset, length)`` each, in order, every one checked like a single ``BlockRequested`` (refused and
    repeated requests are left out, as they would raise no event). A seeder's per-request fast path."""

    requests: list[tuple[int, int, int]]


@record
class RequestCancelled(Event):
    """The peer cancelled a request it had pending with us."""

    piece: int
    offset: int
    length: int


@record
class Rejected(Event):
    """The peer rejected one of our pending requests (BEP 6); a reject answering our own cancel is not reported."""

    piece: int
    offset: int
    length: int


@record
class AllowedFastReceived(Event):
    """The peer will serve ``piece`` to us even while choking us (BEP 6)."""

    piece: int


@record
class Suggested(Event):
    piece: int


@record
class DhtPortReceived(Event):
    port: int


@record
class MetadataRequested(Event):
    """ut_metadata request for metadata piece ``piece``; answer with ``send_metadata_*``."""

    piece: int


@record
class MetadataPieceReceived(Event):
    piece: int
    total_size: int
    data: bytes


@record
class MetadataRejected(Event):
    piece: int


@record
class PexReceived(Event):
    """ut_pex message, capped at ``max_pex_peers`` per list."""

    added: tuple[PexPeer, ...]
    dropped: tuple[PeerAddr, ...]


@record
class ExtendedReceived(Event):
    """An extended message for an extension we advertised but the connection does not parse itself."""

    name: str
    payload: bytes


@record
class ProtocolViolation(Event):
    """Terminal: the peer broke the protocol. Disconnect, and ban it if ``ban``."""

    reason: DisconnectReason
    ban: bool
    message: str


@record
class ConnectionClosed(Event):
    """Terminal: end of stream (``receive_data(b"")``) or a timeout."""

    reason: DisconnectReason = field(default=DisconnectReason.CLOSED_BY_PEER)
