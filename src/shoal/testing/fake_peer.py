"""A scripted, misbehaving wire-level peer for tests (the libtorrent ``fake_peer`` idea).

:class:`FakePeer` is sans-IO: its methods return the exact bytes to send, honest or hostile, and
:meth:`FakePeer.parse` turns what the other side sent back into messages (without judging them, so a test can see
precisely what the victim did). It needs no connection state of its own, so it can say anything at any time:

=============================  =============================================================================
misbehaviour                   builder
=============================  =============================================================================
raw bytes / any message id     :meth:`~FakePeer.raw`, :meth:`~FakePeer.message`
wrong info-hash, bad protocol  :meth:`~FakePeer.handshake` (``info_hash=``, ``protocol=``), :meth:`~FakePeer.partial_handshake`
never-ending handshake         :meth:`~FakePeer.partial_handshake` then silence
oversized length prefixes      :meth:`~FakePeer.length_prefix` (``0xFFFFFFFF``, ``max + 1``)
bad bitfields                  :meth:`~FakePeer.bitfield` (``raw=``), :meth:`~FakePeer.short_bitfield`, :meth:`~FakePeer.spare_bits_bitfield`
requests out of range          :meth:`~FakePeer.request` with any fields, :meth:`~FakePeer.request_flood`
block floods, unsolicited      :meth:`~FakePeer.block_flood`, :meth:`~FakePeer.block` with any piece/offset
corrupt blocks                 :meth:`~FakePeer.corrupt_block`
endless keep-alives            :meth:`~FakePeer.keepalives`
metadata of wrong size / hash  :meth:`~FakePeer.metadata_piece` (``total_size=``, ``data=``), constructed with other metadata
PEX floods                     :meth:`~FakePeer.pex`, :meth:`~FakePeer.pex_flood`
=============================  =============================================================================

:class:`FakePeerStream` runs one over asyncio streams (a real or simulated socket): ``send``, ``receive`` messages
with a timeout, and ``wait_closed`` to check that the victim hung up.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable

from shoal.codec import bencode
from shoal.errors import BencodeError
from shoal.policy.bitfield import Bitfield, bitfield_size
from shoal.types import BLOCK_SIZE, PeerAddr
from shoal.wire import messages as m
from shoal.wire.extension import encode_extension_handshake
from shoal.wire.framing import FrameReader
from shoal.wire.handshake import HANDSHAKE_SIZE, PREFIX, Handshake, Reserved, decode_handshake, make_peer_id
from shoal.wire.metadata import METADATA_PIECE_SIZE, MetadataData, MetadataReject, encode_metadata_message
from shoal.wire.pex import PexPeer, encode_pex

FAKE_PEER_PREFIX = b"-FK0001-"


class FakePeer:
    """Byte builders for one scripted peer of a torrent.

    ``content`` is the torrent's data (for honest and corrupt blocks); ``metadata`` the info dictionary it serves
    over ut_metadata. ``ext_ids`` are the ids the *victim* gave in its extended handshake (set them from
    :meth:`parse` results, or leave the usual ``ut_metadata`` 1 / ``ut_pex`` 2 that Shoal uses).
    """

    def __init__(
        self,
        info_hash: bytes,
        *,
        num_pieces: int = 0,
        piece_length: int = 0,
        content: bytes = b"",
        metadata: bytes = b"",
        reserved: Reserved | None = None,
        peer_id: bytes | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.rng = rng or random.Random(0)
        self.info_hash = info_hash
        self.num_pieces = num_pieces
        self.piece_length = piece_length
        self.content = content
        self.metadata = metadata
        self.reserved = reserved or Reserved.make(extension=True, fast=True)
        self.peer_id = peer_id or make_peer_id(self.rng, FAKE_PEER_PREFIX)
        self.ext_ids: dict[str, int] = {"ut_metadata": 1, "ut_pex": 2}
        self._reader = FrameReader(64 * 1024 * 1024)
        self._handshake_seen = False

    # --- handshake -----------------------------------------------------------------------------------------

    def handshake(
        self,
        *,
        info_hash: bytes | None = None,
        peer_id: bytes | None = None,
        reserved: Reserved | None = None,
        protocol: bytes = PREFIX,
    ) -> bytes:
        """A handshake; every field can be wrong on purpose."""
        ih = self.info_hash if info_hash is None else info_hash
        pid = self.peer_id if peer_id is None else peer_id
        return protocol + (reserved or self.reserved).to_bytes() + ih + pid

    def partial_handshake(self, nbytes: int) -> bytes:
        """The first ``nbytes`` of a handshake (then stay silent: a never-ending handshake)."""
        return self.handshake()[:nbytes]

    def extension_handshake(self, fields: dict[bytes, object] | None = None, **kwargs: object) -> bytes:
        """Extended handshake: the usual fields from ``kwargs`` (see ``encode_extension_handshake``), or a raw
        dictionary ``fields`` encoded as given (hostile sizes, wrong types)."""
        if fields is not None:
            payload = bencode.encode(fields)
        else:
            m_map = kwargs.pop("m", {"ut_metadata": 1, "ut_pex": 2})
            payload = encode_extension_handshake(m_map, **kwargs)  # type: ignore[arg-type]
        return m.Extended(0, payload).encode()

    # --- any bytes -------------------------------------------------------------------------------------------

    @staticmethod
    def raw(data: bytes) -> bytes:
        return data

    @staticmethod
    def message(msg_id: int, payload: bytes = b"") -> bytes:
        """A frame with a correct length prefix and any id and payload."""
        return (len(payload) + 1).to_bytes(4, "big") + bytes([msg_id]) + payload

    @staticmethod
    def length_prefix(length: int, msg_id: int | None = m.PIECE) -> bytes:
        """Just a length prefix (and optionally an id byte) announcing ``length`` bytes that never come."""
        head = length.to_bytes(4, "big")
        return head if msg_id is None else head + bytes([msg_id])

    @staticmethod
    def keepalives(count: int) -> bytes:
        return m.KEEPALIVE_BYTES * count

    # --- piece sets ------------------------------------------------------------------------------------------

    def bitfield(self, pieces: Iterable[int] | None = None, *, raw: bytes | None = None) -> bytes:
        """A bitfield of ``pieces`` (all pieces when None), or the ``raw`` bytes as the payload."""
        if raw is None:
            bf = (
                Bitfield(self.num_pieces, full=True)
                if pieces is None
                else Bitfield.from_indices(self.num_pieces, pieces)
            )
            raw = bf.to_bytes()
        return m.Bitfield(raw).encode()

    def short_bitfield(self) -> bytes:
        return self.bitfield(raw=b"\xff" * max(bitfield_size(self.num_pieces) - 1, 0))

    def spare_bits_bitfield(self) -> bytes:
        """All pieces plus the spare bits after the last one (or one byte too long if there are none)."""
        size = bitfield_size(self.num_pieces)
        if size * 8 == self.num_pieces:
            return self.bitfield(raw=b"\xff" * (size + 1))
        return self.bitfield(raw=b"\xff" * size)

    @staticmethod
    def have(piece: int) -> bytes:
        return m.Have(piece).encode()

    @staticmethod
    def have_all() -> bytes:
        return m.HaveAll().encode()

    @staticmethod
    def have_none() -> bytes:
        return m.HaveNone().encode()

    @staticmethod
    def unchoke() -> bytes:
        return m.Unchoke().encode()

    @staticmethod
    def choke() -> bytes:
        return m.Choke().encode()

    @staticmethod
    def interested() -> bytes:
        return m.Interested().encode()

    # --- requests and blocks -----------------------------------------------------------------------------------

    @staticmethod
    def request(piece: int, offset: int = 0, length: int = BLOCK_SIZE) -> bytes:
        return m.Request(piece, offset, length).encode()

    def request_flood(self, count: int, *, piece: int = 0) -> bytes:
        """``count`` distinct requests (offsets step by one byte, so none is a duplicate)."""
        return b"".join(m.encode_request(m.REQUEST, piece, i, 1) for i in range(count))

    def block_data(self, piece: int, offset: int, length: int = BLOCK_SIZE) -> bytes:
        start = piece * self.piece_length + offset
        return self.content[start : start + length]

    def block(self, piece: int, offset: int, length: int = BLOCK_SIZE, data: bytes | None = None) -> bytes:
        """A piece message with the true content (or ``data``); unsolicited unless the victim asked for it."""
        return m.Piece(
            piece, offset, self.block_data(piece, offset, length) if data is None else data
        ).encode()

    def corrupt_block(self, piece: int, offset: int, length: int = BLOCK_SIZE) -> bytes:
        """The right piece, offset and length, with one byte flipped."""
        data = bytearray(self.block_data(piece, offset, length) or bytes(length))
        data[self.rng.randrange(len(data))] ^= 0xFF
        return m.Piece(piece, offset, bytes(data)).encode()

    def block_flood(self, count: int, *, piece: int = 0, length: int = BLOCK_SIZE) -> bytes:
        """``count`` piece messages nobody asked for."""
        data = bytes(length)
        return b"".join(
            m.Piece(piece, (i * length) % max(self.piece_length, length), data).encode() for i in range(count)
        )

    # --- extensions ----------------------------------------------------------------------------------------------

    def extended(self, name: str, payload: bytes) -> bytes:
        return m.Extended(self.ext_ids.get(name, 0), payload).encode()

    def metadata_piece(
        self, piece: int, *, total_size: int | None = None, data: bytes | None = None
    ) -> bytes:
        """A ut_metadata data message from ``metadata``; lie with ``total_size`` or ``data``."""
        start = piece * METADATA_PIECE_SIZE
        body = self.metadata[start : start + METADATA_PIECE_SIZE] if data is None else data
        size = len(self.metadata) if total_size is None else total_size
        return self.extended("ut_metadata", encode_metadata_message(MetadataData(piece, size, body)))

    def metadata_reject(self, piece: int) -> bytes:
        return self.extended("ut_metadata", encode_metadata_message(MetadataReject(piece)))

    def pex(self, added: Iterable[PeerAddr], dropped: Iterable[PeerAddr] = ()) -> bytes:
        return self.extended("ut_pex", encode_pex((PexPeer(a) for a in added), dropped))

    def pex_flood(self, messages: int, peers_per_message: int) -> bytes:
        """``messages`` ut_pex messages back to back, each adding ``peers_per_message`` distinct peers."""
        out = []
        for i in range(messages):
            base = i * peers_per_message
            peers = [
                PeerAddr(f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}", 6881)
                for n in range(base, base + peers_per_message)
            ]
            out.append(self.pex(peers))
        return b"".join(out)

    # --- what the victim sent ------------------------------------------------------------------------------------

    def parse(self, data: bytes) -> list[Handshake | m.Message]:
        """Decode the victim's bytes: its handshake first, then messages. Learns its extension ids."""
        out: list[Handshake | m.Message] = []
        reader = self._reader
        reader.feed(data)
        if not self._handshake_seen:
            raw = reader.take(HANDSHAKE_SIZE)
            if raw is None:
                return out
            self._handshake_seen = True
            out.append(decode_handshake(raw))
        while (frame := reader.next_frame()) is not None:
            msg_id, start, end = frame
            msg = m.decode_message(msg_id, bytes(reader.buffer[start:end]))
            if isinstance(msg, m.Extended) and msg.ext_id == 0:
                self._learn_ext_ids(msg.payload)
            out.append(msg)
        return out

    def _learn_ext_ids(self, payload: bytes) -> None:
        try:
            d = bencode.decode(payload, strict=False)
        except BencodeError:
            return
        ids = d.get(b"m") if isinstance(d, dict) else None
        if isinstance(ids, dict):
            for k, v in ids.items():
                if isinstance(k, bytes) and isinstance(v, int) and 0 < v < 256:
                    self.ext_ids[k.decode("utf-8", "replace")] = v


class FakePeerStream:
    """A :class:`FakePeer` over asyncio streams; every wait has a timeout."""

    def __init__(self, peer: FakePeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peer = peer
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, peer: FakePeer, host: str, port: int, *, timeout: float = 10.0) -> FakePeerStream:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        return cls(peer, reader, writer)

    async def send(self, data: bytes) -> None:
        """Write ``data``; a victim that already hung up is not an error here (see :meth:`wait_closed`)."""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass

    async def receive(self, timeout: float = 5.0) -> list[Handshake | m.Message]:
        """Whatever arrives within ``timeout`` seconds (at least one read), parsed; [] at end of stream."""
        try:
            data = await asyncio.wait_for(self.reader.read(1 << 20), timeout)
        except (TimeoutError, ConnectionError, OSError):
            return []
        return self.peer.parse(data) if data else []

    async def receive_until(self, kind: type, timeout: float = 10.0) -> list[Handshake | m.Message]:
        """Read until a message of type ``kind`` arrives; raises TimeoutError if it does not in time."""
        got: list[Handshake | m.Message] = []

        async def loop() -> None:
            while not any(isinstance(x, kind) for x in got):
                data = await self.reader.read(1 << 20)
                if not data:
                    raise ConnectionError("victim closed the connection")
                got.extend(self.peer.parse(data))

        await asyncio.wait_for(loop(), timeout)
        return got

    async def wait_closed(self, timeout: float = 10.0) -> bool:
        """True if the victim closes the connection within ``timeout`` (bytes it sends meanwhile are dropped)."""

        async def until_eof() -> None:
            while await self.reader.read(1 << 16):
                pass

        try:
            await asyncio.wait_for(until_eof(), timeout)
        except TimeoutError:
            return False
        except (ConnectionError, OSError):
            return True
        return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 5.0)
        except (TimeoutError, ConnectionError, OSError):
            pass
