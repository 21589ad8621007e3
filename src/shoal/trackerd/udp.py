"""UDP front end of ``shoal tracker`` (BEP 15): an asyncio DatagramProtocol, which the server attaches straight
to its socket (:meth:`UdpTracker.attach`: ``add_reader``, draining a batch of datagrams per wake-up).

Connection ids are stateless and unforgeable (:class:`~shoal.tracker.proto.udp.ConnectionIdMinter`, keyed
with a secret from :mod:`secrets`, or shared through Redis, valid 120 s, bound to the client IP). Announces and scrapes with a wrong or expired id, short or
unknown packets, and packets from rate-limited addresses are dropped silently (RELIABILITY case 35): nothing
is sent back, so spoofed sources cannot use the tracker to amplify. A connect answer is as long as the connect.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import struct
from typing import Any

from shoal.tracker.proto import udp as proto
from shoal.tracker.proto.messages import Event, ScrapeStats
from shoal.trackerd.registry import AnnounceRefused, AnnounceResult, ServerAnnounce
from shoal.trackerd.service import TrackerService, pack_ip

logger = logging.getLogger(__name__)
_ZERO = ScrapeStats(0, 0, 0)
_HEADER = proto.REQUEST_HEADER
_ANNOUNCE = proto.ANNOUNCE
_PORT = struct.Struct(">H")
_CONNECT_RESP = struct.Struct(">iiq")
_ANNOUNCE_RESP = struct.Struct(">iiiii")
_ANNOUNCE_SIZE = proto.ANNOUNCE_SIZE
_PROTOCOL_ID = proto.PROTOCOL_ID
_I32_MAX = 0x7FFFFFFF
_EVENTS = {e.udp: e for e in Event}


class SocketSender:
    """The two transport methods the tracker uses, straight on a non-blocking socket (a full kernel buffer
    drops the answer, as UDP may)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False

    def sendto(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError as exc:  # includes BlockingIOError
            logger.debug("udp tracker send to %s failed: %s", addr[0], exc)

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        return self.sock.getsockname() if name == "sockname" else None


class UdpTracker(asyncio.DatagramProtocol):
    """The BEP 15 tracker. Either a DatagramProtocol (``create_datagram_endpoint``) or, faster, :meth:`attach`ed
    to a socket: then each readiness event drains up to ``batch`` datagrams (the selector loop would read one)."""

    def __init__(self, service: TrackerService, secret: bytes | None = None) -> None:
        self.service = service
        self.config = service.config
        self.minter = proto.ConnectionIdMinter(secret or secrets.token_bytes(32))
        self.transport: asyncio.DatagramTransport | None = None
        self.v6 = False
        self._loop = asyncio.get_event_loop()
        self._packed: dict[str, bytes] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._send: Any = None
        self._interval = min(self.config.interval, _I32_MAX)
        self._counts_fit = self.config.max_peers <= _I32_MAX  # peer counts cannot overflow an i32

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send = transport.sendto  # type: ignore[attr-defined]
        self._loop = asyncio.get_running_loop()
        sockname = transport.get_extra_info("sockname")
        self.v6 = sockname is not None and len(sockname) == 4

    def attach(self, sock: socket.socket, batch: int = 256) -> None:
        """Serve ``sock``: each wake-up reads up to ``batch`` datagrams, then sends all their answers. Sending
        after the batch instead of after each datagram means one wake-up of a busy client per batch rather than
        one per answer (on a loaded machine that ping-pong of context switches was a large share of the cost)."""
        sock.setblocking(False)
        sender = SocketSender(sock)
        self.connection_made(sender)  # type: ignore[arg-type]
        answers: list[tuple[bytes, tuple[Any, ...]]] = []
        queue = answers.append
        self._send = lambda data, addr: queue((data, addr))
        recvfrom = sock.recvfrom
        sendto = sock.sendto
        handle = self._datagram
        clock = self._loop.time

        def readable() -> None:
            now = clock()  # one clock read per batch: the ids and rate limits work in whole seconds anyway
            try:
                for _ in range(batch):
                    try:
                        data, addr = recvfrom(2048)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as exc:  # e.g. an ICMP error for an earlier answer
                        logger.debug("udp tracker receive failed: %s", exc)
                        continue
                    try:
                        handle(data, addr, now)
                    except Exception:  # one bad packet must never stop the listener
                        logger.exception("udp tracker failed on a packet from %s", addr[0])
            finally:
                for packet, to in answers:
                    try:
                        sendto(packet, to)
                    except OSError as exc:  # a full buffer drops the answer, as UDP may
                        logger.debug("udp tracker send to %s failed: %s", to[0], exc)
                answers.clear()

        self._loop.add_reader(sock.fileno(), readable)

    def detach(self) -> None:
        transport = self.transport
        if isinstance(transport, SocketSender) and not transport.closed:
            transport.closed = True
            self._loop.remove_reader(transport.sock.fileno())
            transport.sock.close()

    def error_received(self, exc: Exception) -> None:
        logger.debug("udp tracker socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            self._datagram(data, addr, self._loop.time())
        except Exception:  # one bad packet must never stop the listener
            logger.exception("udp tracker failed on a packet from %s", addr[0])

    def _datagram(self, data: bytes, addr: tuple[Any, ...], now: float) -> None:
        svc = self.service
        send = self._send
        n = len(data)
        if n < 16:
            svc.dropped_udp += 1
            return
        cid, action, tid = _HEADER.unpack_from(data)
        ip = addr[0]
        limited = svc.limiter.rate > 0
        if action == 0:  # connect
            if cid != _PROTOCOL_ID:
                svc.dropped_udp += 1
            elif limited and not svc.allow(ip, now):
                return
            else:
                svc.requests += 1
                send(_CONNECT_RESP.pack(0, tid, self.minter.make(ip, now)), addr)
            return
        if action == 1:
            if n < _ANNOUNCE_SIZE or not self.minter.valid(cid, ip, now):
                svc.dropped_udp += 1
                return
        elif action != 2 or n < 36 or not self.minter.valid(cid, ip, now):
            svc.dropped_udp += 1
            return
        if limited:
            if not svc.allow(ip, now):
                return
        else:
            svc.requests += 1
        if action == 2:
            req = proto.decode_request(data, self.config.max_scrape_hashes_udp)
            assert isinstance(req, proto.UdpScrape)
            self._scrape(tid, req.info_hashes, addr)
            return
        svc.announces += 1
        f = _ANNOUNCE.unpack_from(data)
        port = f[12]
        if port == 0:
            send(proto.encode_error(tid, "invalid port"), addr)
            return
        if self.config.passkeys is not None:
            send(proto.encode_error(tid, "passkeys are required: use http"), addr)
            return
        packed = self._packed.get(ip)
        if packed is None:
            if len(self._packed) > 65536:
                self._packed.clear()
            packed = self._packed[ip] = pack_ip(ip)[1]
        left = f[6]
        event = _EVENTS.get(f[8], Event.NONE)
        if self.config.log_announces:
            logger.info("announce %s %s %s", ip, f[3].hex(), event.http)
        v6 = len(packed) == 16
        reg = svc.registry
        if reg is None:
            sreq = ServerAnnounce(
                f[3],
                f[4],
                packed + _PORT.pack(port),
                left if left >= 0 else 1,
                event,
                f[11] if f[11] >= 0 else None,
            )
            self._spawn(self._announce_async(tid, sreq, now, addr, v6))
            return
        try:
            complete, incomplete, peers, has_v6 = reg.announce_fields(
                f[3],
                f[4],
                packed + _PORT.pack(port),
                left if left >= 0 else 1,
                event,
                f[11] if f[11] >= 0 else None,
                None,
                now,
            )
        except AnnounceRefused as exc:
            send(proto.encode_error(tid, str(exc)), addr)
            return
        if has_v6 or v6:
            size = 18 if v6 else 6
            body = b"".join([a for a in peers if len(a) == size])
        else:
            body = b"".join(peers)
        if self._counts_fit:
            head = _ANNOUNCE_RESP.pack(1, tid, self._interval, incomplete, complete)
        else:
            head = _ANNOUNCE_RESP.pack(
                1, tid, self._interval, min(incomplete, _I32_MAX), min(complete, _I32_MAX)
            )
        send(head + body, addr)

    def _scrape(self, tid: int, hashes: list[bytes], addr: tuple[Any, ...]) -> None:
        transport = self.transport
        assert transport is not None
        reg = self.service.registry
        if reg is None:
            self._spawn(self._scrape_async(tid, hashes, addr))
            return
        try:
            stats = reg.scrape(hashes)
        except AnnounceRefused as exc:
            transport.sendto(proto.encode_error(tid, str(exc)), addr)
            return
        transport.sendto(proto.encode_scrape_response(tid, [stats.get(h, _ZERO) for h in hashes]), addr)

    def _announce_packet(self, tid: int, res: AnnounceResult, v6: bool) -> bytes:
        size = 18 if v6 else 6
        if res.has_v6 or v6:
            peers = b"".join([a for a in res.peers if len(a) == size])
        else:
            peers = b"".join(res.peers)
        return proto.encode_announce_response(tid, res.interval, res.incomplete, res.complete, peers)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce_async(
        self, tid: int, sreq: ServerAnnounce, now: float, addr: tuple[Any, ...], v6: bool
    ) -> None:
        backend: Any = self.service.backend
        try:
            res = await backend.announce(sreq, now)
            packet = self._announce_packet(tid, res, v6)
        except AnnounceRefused as exc:
            packet = proto.encode_error(tid, str(exc))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(packet, addr)

    async def _scrape_async(self, tid: int, hashes: list[bytes], addr: tuple[Any, ...]) -> None:
        backend: Any = self.service.backend
        try:
            stats = await backend.scrape(hashes, None)
            packet = proto.encode_scrape_response(tid, [stats.get(h, _ZERO) for h in hashes])
        except AnnounceRefused as exc:
            packet = proto.encode_error(tid, str(exc))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(packet, addr)
