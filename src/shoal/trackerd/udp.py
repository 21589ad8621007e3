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

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()
        sockname = transport.get_extra_info("sockname")
        self.v6 = sockname is not None and len(sockname) == 4

    def attach(self, sock: socket.socket, batch: int = 256) -> None:
        sock.setblocking(False)
        sender = SocketSender(sock)
        self.connection_made(sender)  # type: ignore[arg-type]
        recvfrom = sock.recvfrom
        handle = self.datagram_received

        def readable() -> None:
            for _ in range(batch):
                try:
                    data, addr = recvfrom(2048)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:  # e.g. an ICMP error for an earlier answer
                    logger.debug("udp tracker receive failed: %s", exc)
                    continue
                handle(data, addr)

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
            self._datagram(data, addr)
        except Exception:  # one bad packet must never stop the listener
            logger.exception("udp tracker failed on a packet from %s", addr[0])

    def _datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        svc = self.service
        transport = self.transport
        assert transport is not None
        n = len(data)
        if n < 16:
            svc.dropped_udp += 1
            return
        cid, action, tid = _HEADER.unpack_from(data)
        now = self._loop.time()
        ip = addr[0]
        if action == proto.ACTION_CONNECT:
            if cid != proto.PROTOCOL_ID:
                svc.dropped_udp += 1
            elif svc.allow(ip, now):
                transport.sendto(proto.encode_connect_response(tid, self.minter.make(ip, now)), addr)
            return
        if (
            (action == proto.ACTION_ANNOUNCE and n < proto.ANNOUNCE_SIZE)
            or (action == proto.ACTION_SCRAPE and n < 36)
            or action not in (proto.ACTION_ANNOUNCE, proto.ACTION_SCRAPE)
            or not self.minter.valid(cid, ip, now)
        ):
            svc.dropped_udp += 1
            return
        if not svc.allow(ip, now):
            return
        if action == proto.ACTION_SCRAPE:
            req = proto.decode_request(data, self.config.max_scrape_hashes_udp)
            assert isinstance(req, proto.UdpScrape)
            self._scrape(tid, req.info_hashes, addr)
            return
        svc.announces += 1
        f = _ANNOUNCE.unpack_from(data)
        port = f[12]
        if port == 0:
            transport.sendto(proto.encode_error(tid, "invalid port"), addr)
            return
        if self.config.passkeys is not None:
            transport.sendto(proto.encode_error(tid, "passkeys are required: use http"), addr)
            return
        packed = self._packed.get(ip)
        if packed is None:
            if len(self._packed) > 65536:
                self._packed.clear()
            packed = self._packed[ip] = pack_ip(ip)[1]
        left = f[6]
        sreq = ServerAnnounce(
            f[3],
            f[4],
            packed + _PORT.pack(port),
            left if left >= 0 else 1,
            Event.from_udp(f[8]),
            f[11] if f[11] >= 0 else None,
        )
        if self.config.log_announces:
            logger.info("announce %s %s %s", ip, sreq.info_hash.hex(), sreq.event.http)
        v6 = len(packed) == 16
        reg = svc.registry
        if reg is None:
            self._spawn(self._announce_async(tid, sreq, now, addr, v6))
            return
        try:
            res = reg.announce(sreq, now)
        except AnnounceRefused as exc:
            transport.sendto(proto.encode_error(tid, str(exc)), addr)
            return
        transport.sendto(self._announce_packet(tid, res, v6), addr)

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
