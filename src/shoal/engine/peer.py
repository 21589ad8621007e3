"""PeerTask: pumps bytes between an asyncio transport and a sans-IO :class:`~shoal.wire.connection.PeerConnection`.

It is an ``asyncio.BufferedProtocol``: the event loop receives straight into the connection's frame buffer (no
copy, no StreamReader). After each read the events are drained and dispatched through a table to the torrent's
:class:`~shoal.engine.peers.PeerSet`. Writes made while handling events are batched into one ``writelines`` call
at the end. One ``loop.call_at`` timer follows ``conn.get_timer()`` (keep-alives, handshake and inactivity
time-outs). An accepted connection has no torrent until its handshake names an info-hash the session knows.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from typing import TYPE_CHECKING, Any

from shoal.errors import DisconnectReason, LocalProtocolError, PeerProtocolError
from shoal.policy.rate import RateEstimator
from shoal.policy.requests import RequestTracker
from shoal.types import BlockRef, PeerAddr
from shoal.wire import events as ev
from shoal.wire.connection import PeerConnection
from shoal.wire.mse import Cipher, MseResponder

if TYPE_CHECKING:
    from shoal.engine.session import Session
    from shoal.engine.torrent import TorrentTask

logger = logging.getLogger(__name__)


WRITE_HIGH_WATER = 1024 * 1024
SERVE_CHUNK = WRITE_HIGH_WATER // 2
"""Blocks a serving pass hands to the transport at a time: once the socket is full, at most about the high-water
mark plus one chunk of block views waits in user space (each view keeps its cached piece buffer alive)."""

# An incoming connection's first bytes (an MSE handshake, or the plain handshake it may turn out to be) are read into
# this scratch buffer: the loop calls get_buffer, recv_into and buffer_updated back to back, so one buffer serves
# every connection, and no connection holds memory for the handshake.
_HANDSHAKE_SCRATCH = bytearray(2048)
_HANDSHAKE_VIEW = memoryview(_HANDSHAKE_SCRATCH)
_SYSTEM_RANDOM = random.SystemRandom()  # MSE private keys


def _rc4_stream(key: bytes, position: int) -> Cipher:
    from shoal.engine.rc4 import rc4_stream  # ctypes and libcrypto only once an RC4-only peer shows up

    return rc4_stream(key, position)


class PeerTask(asyncio.BufferedProtocol):
    """One peer connection of one torrent (the picker's peer key)."""

    # slots, not a __dict__: an idle connection costs ~1 KiB less (issue 7 case 5); __weakref__ for engine/pex.py
    __slots__ = (
        "__weakref__",
        "_flush_scheduled",
        "_loop",
        "_mse",
        "_mse_info_hash",
        "_out",
        "_rx_cipher",
        "_rx_view",
        "_timer",
        "_trace",
        "_tx_cipher",
        "addr",
        "attached",
        "block_read",
        "close_reason",
        "closed",
        "conn",
        "depth",
        "down_rate",
        "down_rate_est",
        "down_window",
        "downloaded",
        "have_sent",
        "initiator",
        "is_seed",
        "last_served_piece",
        "listen_port",
        "read_paused",
        "reqq",
        "serve_due",
        "session",
        "slow_start",
        "slow_start_rate",
        "snubbed",
        "starved",
        "torrent",
        "tracker",
        "transport",
        "unchoked_since",
        "up_rate",
        "up_rate_est",
        "up_window",
        "upload_queue",
        "uploaded",
        "write_paused",
    )

    serve_chunk = SERVE_CHUNK

    def __init__(self, session: Session, torrent: TorrentTask | None, addr: PeerAddr | None, initiator: bool):
        self.session = session
        self.torrent = torrent
        self.addr: PeerAddr = addr or PeerAddr("?", 0)
        self.initiator = initiator
        self.transport: asyncio.Transport | None = None
        self.conn: PeerConnection | None = None
        self.attached = False
        self.have_sent = False
        self._trace = logger.isEnabledFor(logging.DEBUG)
        self.closed = False
        self.close_reason = ""
        self._out: list[bytes | bytearray | memoryview] = []
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self.write_paused = False
        self.read_paused = False
        # download state (engine side; the connection keeps the wire ledger)
        self.tracker: RequestTracker | None = None
        self.depth = max(session.settings.min_outstanding_requests, 128)
        # slow start (as libtorrent's request queue): every block received adds one to the depth, so the pipeline
        # doubles per round trip until the rate estimate takes over at a tick (download.py, peers.py)
        self.slow_start = True
        self.slow_start_rate = 0.0
        self.down_rate_est = RateEstimator()
        self.up_rate_est = RateEstimator()
        self.unchoked_since: float | None = None
        self.downloaded = 0
        self.uploaded = 0
        self.down_window = 0  # bytes since the last tick, for rates and pipeline depth
        self.up_window = 0
        self.down_rate = 0.0
        self.up_rate = 0.0
        self.is_seed = False
        self.reqq = 250
        # blocks the peer asked for, in order; None until its first request (an empty deque is ~600 bytes, and
        # most peers of a seeder, or of a download, never ask)
        self.upload_queue: collections.deque[tuple[int, int, int]] | None = None
        self.last_served_piece = -1  # a peer served from a piece before gets the whole piece read and cached
        self.block_read: tuple[tuple[int, int, int], asyncio.Future[bytes]] | None = (
            None  # a lone block from disk
        )
        self.serve_due = False  # requests came in while draining: serve them once, after the drain
        self.snubbed = False
        self.starved = False
        self.listen_port = 0  # from its extended handshake (BEP 10 ``p``)
        self._mse: MseResponder | None = None  # an incoming connection until its first bytes are understood
        self._mse_info_hash: bytes | None = None
        self._rx_cipher: Cipher | None = None  # an RC4 stream (MSE with a peer that offers nothing else)
        self._tx_cipher: Cipher | None = None
        self._rx_view: memoryview | None = None

    def __repr__(self) -> str:
        return f"<peer {self.addr.host}:{self.addr.port}>"

    @property
    def key(self) -> str:
        return f"{self.addr.host}:{self.addr.port}"

    # --- asyncio protocol ------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport
        # Serving pieces: let up to 1 MiB queue in user space before pause_writing, so the socket never runs dry
        # between pause and resume on a fast link.
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_HIGH_WATER // 4)  # type: ignore[attr-defined]
        name = transport.get_extra_info("peername")
        if name and self.addr.host == "?":
            self.addr = PeerAddr(str(name[0]), int(name[1]))
        s = self.session
        now = s.clock.now()
        if self.initiator:
            t = self.torrent
            assert t is not None
            self.conn = PeerConnection(
                t.info_hash,
                s.peer_id,
                initiator=True,
                settings=s.settings,
                now=now,
                reserved=s.reserved(),
                block_batches=True,
                **t.conn_geometry(),
            )
            self._send(self.conn.initiate())
        else:
            self.conn = PeerConnection(
                None,
                s.peer_id,
                initiator=False,
                settings=s.settings,
                now=now,
                reserved=s.reserved(),
                block_batches=True,
            )
            if s.settings.mse_incoming:
                self._mse = MseResponder(
                    s.mse_skey, _SYSTEM_RANDOM, stream_cipher=_rc4_stream, allow_rc4=s.settings.mse_allow_rc4
                )
        self._arm_timer()

    def get_buffer(self, sizehint: int) -> memoryview:
        # The loop's hint is ignored: uvloop (libuv) always asks for 64 KiB, which would give every idle
        # connection a 64 KiB receive buffer. The frame reader sizes reads itself instead (4 KiB while quiet,
        # doubling after each full read up to 256 KiB while data flows).
        if self._mse is not None:
            return _HANDSHAKE_VIEW
        assert self.conn is not None
        view = self.conn.get_buffer(-1)
        if self._rx_cipher is not None:
            self._rx_view = view
        return view

    def buffer_updated(self, nbytes: int) -> None:
        if self._mse is not None:
            self._handshake_bytes(_HANDSHAKE_SCRATCH[:nbytes])
            return
        conn = self.conn
        assert conn is not None
        if self._rx_cipher is not None and self._rx_view is not None:
            self._rx_cipher.crypt_into(self._rx_view[:nbytes])
            self._rx_view = None
        conn.buffer_updated(nbytes, self.session.clock.now())
        self._drain()

    def _handshake_bytes(self, data: bytes | bytearray) -> None:
        """An incoming connection's first bytes: an MSE handshake to answer (plaintext stream), or plain."""
        mse = self._mse
        conn = self.conn
        assert mse is not None and conn is not None
        try:
            mse.receive_data(data)
        except PeerProtocolError as exc:
            logger.info("%r: %s", self, exc)
            self._mse = None
            self.close(exc.reason.value)
            return
        out = mse.data_to_send()
        if out:
            self._send(out)
        if mse.done:
            self._mse = None
            if not mse.plaintext:
                self._mse_info_hash = mse.info_hash
            if mse.rc4_stream:
                self.flush()  # the handshake's own bytes go out as they are; everything after is encrypted
                self._rx_cipher, self._tx_cipher = mse.decryptor, mse.encryptor
            payload = mse.payload()
            if payload:
                conn.receive_data(payload, self.session.clock.now())
            self._drain()
        elif self._out:
            self.flush()

    def eof_received(self) -> bool | None:
        if self.conn is not None:
            self.conn.receive_data(b"")
            self._drain()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.closed:
            self.closed = True
            self.close_reason = self.close_reason or (
                str(exc) if exc else DisconnectReason.CLOSED_BY_PEER.value
            )
        if self.torrent is not None:
            self.torrent.peers.detach(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.torrent is not None and self.attached:
            self.torrent.peers.serve(self)

    # --- events ----------------------------------------------------------------------------------------------

    def _drain(self) -> None:
        conn = self.conn
        assert conn is not None
        handlers = _HANDLERS
        # What the events send is flushed once, at the end: meanwhile a send schedules no flush callback of its own
        # (one Handle and one loop callback per read saved, issue 7 case 5).
        pending = self._flush_scheduled
        self._flush_scheduled = True
        try:
            while not self.closed:
                event = conn.next_event()
                if event is None:
                    break
                if self._trace:
                    logger.debug("%r: %s", self, event if type(event) is not ev.BlocksReceived else "blocks")
                handlers[type(event)](self, event)
            if self.serve_due:
                self.serve_due = False
                torrent = self.torrent
                if torrent is not None and self.attached and not self.closed:
                    torrent.peers.serve(self)  # every block asked for in this read, in one pass
            extra = conn.data_to_send()
            if extra:
                self._send(extra)
            conn.release_idle_buffer()
        except LocalProtocolError as exc:  # a bug on our side: drop this peer, keep the engine alive
            logger.warning("%r: local protocol error: %s", self, exc)
            self.close(f"internal error: {exc}")
            return
        finally:
            self._flush_scheduled = pending
        if self._out:
            self.flush()

    def _on_handshake_received(self, event: ev.HandshakeReceived) -> None:
        if self._mse_info_hash is not None and event.info_hash != self._mse_info_hash:
            self.close(DisconnectReason.WRONG_INFO_HASH.value)  # the MSE handshake named another torrent
            return
        task = self.session.route(event.info_hash)
        if task is None:
            self.close("unknown info-hash")
            return
        why = task.peers.refuse_incoming(self)
        if why:
            self.close(why)
            return
        self.torrent = task
        assert self.conn is not None
        self._send(self.conn.accept(task.info_hash, **task.conn_geometry()))

    def _on_handshaken(self, event: ev.Handshaken) -> None:
        assert self.torrent is not None
        self.torrent.peers.attach(self, event)

    def _on_violation(self, event: ev.ProtocolViolation) -> None:
        logger.info("%r: %s (%s)", self, event.message, event.reason.value)
        if event.ban and self.torrent is not None:
            self.torrent.peers.ban(self.addr.host, event.message)
        self.close(event.reason.value)

    def _on_closed(self, event: ev.ConnectionClosed) -> None:
        self.close(event.reason.value)

    def _to_peers(self, event: Any) -> None:
        torrent = self.torrent
        if torrent is not None and self.attached:
            torrent.peers.on_event(self, event)

    def _on_blocks(self, event: ev.BlocksReceived) -> None:
        torrent = self.torrent
        if torrent is not None and self.attached:
            torrent.peers.on_blocks(self, event.data, event.blocks)

    # --- output ----------------------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if data:
            self._out.append(data)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if not self._out:
            return
        out, self._out = self._out, []
        if self.transport is not None and not self.transport.is_closing():
            if self._tx_cipher is not None:
                self.transport.write(self._tx_cipher.crypt(b"".join(out)))
            else:
                self.transport.writelines(out)
        if self._timer is None:
            # a send only moves the deadlines later (keep-alive), so an armed timer fires early, if at all, and
            # re-arms itself: no need to work out the deadline again on every flush
            self._arm_timer()

    def make_tracker(self, now: float) -> None:
        """The request tracker, reading the wire connection's ledger of our requests (one ledger, kept by the wire:
        a request enters it when encoded and leaves when answered, rejected, cancelled or choked away)."""
        s = self.session.settings
        assert self.conn is not None
        self.tracker = RequestTracker(
            request_timeout=s.request_timeout,
            snub_timeout=s.snub_timeout,
            now=now,
            ledger=self.conn.request_ledger,
        )

    def send_requests(self, blocks: list[BlockRef], now: float) -> None:
        assert self.conn is not None
        self._send(self.conn.request_many(blocks, now))

    def send_cancel(self, block: BlockRef) -> None:
        if self.conn is None or self.closed:
            return
        self._send(self.conn.cancel(block.piece, block.offset, block.length))

    def send_block(self, piece: int, offset: int, data: bytes | bytearray | memoryview) -> int:
        """Serve a requested block; returns bytes sent (0 if the request is gone)."""
        assert self.conn is not None
        n = len(data)
        header = self.conn.send_block_header(piece, offset, n)
        if not header:
            return 0
        # header and block go to writelines as two items: the block (a view of an immutable cached piece) is
        # never concatenated, so uvloop's writev sends it from the cache without a copy
        out = self._out
        out.append(header)
        out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)
        return n

    def send_message(self, data: bytes) -> None:
        self._send(data)

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        logger.debug("%r: closing: %s", self, reason)
        if self._out:
            self.flush()
        if self.transport is not None:
            self.transport.close()

    def pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self.transport is not None and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    # --- timer -----------------------------------------------------------------------------------------------

    def _arm_timer(self) -> None:
        conn = self.conn
        if conn is None or self.closed:
            return
        when = conn.get_timer()
        if when is None:
            return
        at = self._loop_time(when)
        if self._timer is not None:
            if self._timer.when() <= at + 0.5:
                return  # fires no later than needed; it re-arms itself
            self._timer.cancel()
        self._timer = self._loop.call_at(at, self._on_timer)

    def _loop_time(self, when: float) -> float:
        # Convert the session clock to loop time (both monotonic for the real clock).
        return self._loop.time() + max(0.0, when - self.session.clock.now())

    def _on_timer(self) -> None:
        self._timer = None
        conn = self.conn
        if conn is None or self.closed:
            return
        data = conn.handle_timer(self.session.clock.now())
        if data:
            self._send(data)
        self._drain()
        self._arm_timer()


_HANDLERS: dict[type, Any] = {
    ev.HandshakeReceived: PeerTask._on_handshake_received,
    ev.Handshaken: PeerTask._on_handshaken,
    ev.ProtocolViolation: PeerTask._on_violation,
    ev.ConnectionClosed: PeerTask._on_closed,
    ev.BlocksReceived: PeerTask._on_blocks,
}
for _name in dir(ev):
    _cls = getattr(ev, _name)
    if (
        isinstance(_cls, type)
        and issubclass(_cls, ev.Event)
        and _cls is not ev.Event
        and _cls not in _HANDLERS
    ):
        _HANDLERS[_cls] = PeerTask._to_peers
