"""UDP front end of ``shoal tracker`` (BEP 15) as an asyncio DatagramProtocol.

Connection ids are stateless and unforgeable (:class:`~shoal.tracker.proto.udp.ConnectionIdMinter`, keyed
with a secret from :mod:`secrets`, valid 120 s). Announces and scrapes with a wrong or expired id, short or
unknown packets, and packets from rate-limited addresses are dropped silently (RELIABILITY case 35): nothing
is sent back, so spoofed sources cannot use the tracker to amplify. A connect answer is as long as the connect.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from shoal.tracker.proto import udp as proto
from shoal.tracker.proto.messages import ScrapeStats
from shoal.trackerd.registry import AnnounceRefused, AnnounceResult, ServerAnnounce
from shoal.trackerd.service import TrackerService, pack_ip

logger = logging.getLogger(__name__)
_ZERO = ScrapeStats(0, 0, 0)


class UdpTracker(asyncio.DatagramProtocol):
    def __init__(self, service: TrackerService, secret: bytes | None = None) -> None:
        self.service = service
        self.config = service.config
        self.minter = proto.ConnectionIdMinter(secret or secrets.token_bytes(32))
        self.transport: asyncio.DatagramTransport | None = None
        self.v6 = False
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sockname = transport.get_extra_info("sockname")
        self.v6 = sockname is not None and len(sockname) == 4

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
        req = proto.decode_request(data, self.config.max_scrape_hashes_udp)
        if req is None:
            svc.dropped_udp += 1
            return
        loop_time = asyncio.get_running_loop().time()
        ip = addr[0]
        if not svc.allow(ip, loop_time):
            return
        if isinstance(req, proto.ConnectRequest):
            transport.sendto(proto.encode_connect_response(req.tid, self.minter.make(ip, loop_time)), addr)
            return
        if not self.minter.valid(req.connection_id, ip, loop_time):
            svc.dropped_udp += 1
            return
        if isinstance(req, proto.UdpAnnounce):
            r = req.request
            if r.port == 0:
                transport.sendto(proto.encode_error(req.tid, "invalid port"), addr)
                return
            norm, packed = pack_ip(ip)
            sreq = ServerAnnounce(
                info_hash=r.info_hash,
                peer_id=r.peer_id,
                addr=packed + r.port.to_bytes(2, "big"),
                left=r.left if r.left >= 0 else 1,
                event=r.event,
                numwant=r.numwant,
            )
            if self.config.log_announces:
                logger.info("announce %s %s %s", norm, r.info_hash.hex(), r.event.http)
            if self.config.passkeys is not None:
                transport.sendto(proto.encode_error(req.tid, "passkeys are required: use http"), addr)
                return
            reg = svc.registry
            if reg is not None:
                try:
                    res = reg.announce(sreq, loop_time)
                except AnnounceRefused as exc:
                    transport.sendto(proto.encode_error(req.tid, str(exc)), addr)
                    return
                transport.sendto(self._announce_packet(req.tid, res, len(packed) == 16), addr)
                return
            self._spawn(self._announce_async(req.tid, sreq, loop_time, addr, len(packed) == 16))
            return
        hashes = req.info_hashes
        reg = svc.registry
        if reg is not None:
            try:
                stats = reg.scrape(hashes)
            except AnnounceRefused as exc:
                transport.sendto(proto.encode_error(req.tid, str(exc)), addr)
                return
            transport.sendto(
                proto.encode_scrape_response(req.tid, [stats.get(h, _ZERO) for h in hashes]), addr
            )
            return
        self._spawn(self._scrape_async(req.tid, hashes, addr))

    def _announce_packet(self, tid: int, res: AnnounceResult, v6: bool) -> bytes:
        size = 18 if v6 else 6
        peers = b"".join([p.addr for p in res.peers if len(p.addr) == size])
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
