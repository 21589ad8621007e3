"""Local Service Discovery (BEP 14): multicast BT-SEARCH announces on the LAN, and listening for others'.

The adapter over the pure codec in :mod:`shoal.codec.lsd`. One UDP socket per family bound to the LSD port
(6771, shared with other clients via SO_REUSEADDR) joined to the group (239.192.152.143, ff15::efc0:988f) on
one interface; announces go out with TTL/hops 1. A random cookie marks our own announces so their echo is
ignored. Each torrent is announced when added and every ``lsd_announce_interval`` seconds. Private torrents
(BEP 27) are never announced: :meth:`LsdService.add_torrent` refuses them. Incoming datagrams are rate-limited
per source IP and parsed with bounds; every info-hash in them becomes ``on_peer(info_hash, PeerAddr(ip, port))``.

For tests the group may be a unicast address (e.g. 127.0.0.1 and a port from the OS): no group is joined then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import struct
from collections.abc import Callable
from typing import Any

from shoal.codec.lsd import LSD_GROUP4, LSD_GROUP6, LSD_PORT, decode_announce, encode_announce
from shoal.config import Settings
from shoal.dht.dos import RateLimiter
from shoal.errors import NetworkError, RemoteProtocolError
from shoal.types import PeerAddr

logger = logging.getLogger(__name__)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, service: LsdService) -> None:
        self.service = service

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.service._received(data, addr[0])

    def error_received(self, exc: Exception) -> None:
        logger.debug("lsd: socket error %s", exc)


class LsdService:
    def __init__(
        self,
        settings: Settings,
        *,
        listen_port: int,
        on_peer: Callable[[bytes, PeerAddr], None],
        family: int = 4,
        interface: str | None = None,
        group: str | None = None,
        port: int = LSD_PORT,
        rng: random.Random | None = None,
    ) -> None:
        """``interface``: the IPv4 address (family 4) or interface name (family 6) to multicast on."""
        self.settings = settings
        self.listen_port = listen_port
        self.on_peer = on_peer
        self.family = family
        self.interface = interface
        self.group = group or (LSD_GROUP6 if family == 6 else LSD_GROUP4)
        self.port = port
        self.cookie = (rng or random.SystemRandom()).getrandbits(32).to_bytes(4, "big").hex().encode()
        self.limiter = RateLimiter(rate=settings.lsd_messages_per_ip_per_second, window=10.0, block_for=60.0)
        self._torrents: set[bytes] = set()
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self.bound_port = 0
        self.counters = {"sent": 0, "received": 0, "bad": 0, "peers": 0}

    def _multicast(self) -> bool:
        return ipaddress.ip_address(self.group).is_multicast

    def _make_socket(self) -> socket.socket:
        af = socket.AF_INET6 if self.family == 6 else socket.AF_INET
        sock = socket.socket(af, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if not self._multicast():
                sock.bind((self.group, self.port))
                return sock
            sock.bind(("::" if self.family == 6 else "0.0.0.0", self.port))
            group = socket.inet_pton(af, self.group)
            if self.family == 6:
                index = socket.if_nametoindex(self.interface) if self.interface else 0
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group + struct.pack("@I", index))
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
            else:
                local = socket.inet_aton(self.interface or "0.0.0.0")
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group + local)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, local)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        except OSError:
            sock.close()
            raise
        return sock

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            sock = self._make_socket()
        except OSError as exc:
            raise NetworkError(f"cannot open lsd socket for {self.group} port {self.port}: {exc}") from None
        self.bound_port = sock.getsockname()[1]
        self._transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self._task = asyncio.ensure_future(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def __aenter__(self) -> LsdService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def add_torrent(self, info_hash: bytes, *, private: bool = False) -> bool:
        """Announce ``info_hash`` now and periodically; private torrents are refused (returns False)."""
        if private:
            return False
        if info_hash not in self._torrents:
            self._torrents.add(info_hash)
            self.announce([info_hash])
        return True

    def remove_torrent(self, info_hash: bytes) -> None:
        self._torrents.discard(info_hash)

    def announce(self, info_hashes: list[bytes]) -> None:
        if self._transport is None or not info_hashes:
            return
        s = self.settings
        for start in range(0, len(info_hashes), s.lsd_max_infohashes_per_message):
            chunk = info_hashes[start : start + s.lsd_max_infohashes_per_message]
            for datagram in encode_announce(chunk, self.listen_port, v6=self.family == 6, cookie=self.cookie):
                self._transport.sendto(datagram, (self.group, self.port))
                self.counters["sent"] += 1

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lsd_announce_interval)
            self.announce(sorted(self._torrents))

    def _received(self, data: bytes, host: str) -> None:
        self.counters["received"] += 1
        if not self.limiter.allow(host, asyncio.get_running_loop().time()):
            return
        try:
            msg = decode_announce(data, max_infohashes=self.settings.lsd_max_infohashes_per_message)
        except RemoteProtocolError as exc:
            self.counters["bad"] += 1
            logger.debug("lsd: bad datagram from %s: %s", host, exc)
            return
        if msg.cookie == self.cookie:
            return  # our own announce, looped back
        host = host.split("%", 1)[0]  # drop an IPv6 zone
        for info_hash in msg.info_hashes:
            self.counters["peers"] += 1
            self.on_peer(info_hash, PeerAddr(host, msg.port))
