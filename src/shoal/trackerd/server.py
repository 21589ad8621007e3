"""Runs a whole tracker: backend, HTTP and UDP listeners, housekeeping, graceful shutdown.

``async with TrackerServer(config) as server:`` starts everything (ports from the OS when the config says
port 0; read them back from ``server.http_address`` / ``server.udp_address``) and on exit stops accepting,
closes connections, saves state (``--state-db``) and closes the Redis client.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import time
from types import TracebackType

from shoal.errors import ConfigError, NetworkError
from shoal.trackerd.config import TrackerdConfig, parse_hostport, read_info_hashes, read_passkeys
from shoal.trackerd.http import HttpTracker
from shoal.trackerd.registry import Registry
from shoal.trackerd.service import AsyncBackend, MemoryBackend, TrackerService
from shoal.trackerd.state import StateDb
from shoal.trackerd.udp import UdpTracker

logger = logging.getLogger(__name__)


def _socket(host: str, port: int, kind: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1024)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise NetworkError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class TrackerServer:
    def __init__(self, config: TrackerdConfig, *, rng: random.Random | None = None) -> None:
        if config.http is None and config.udp is None:
            raise ConfigError("the tracker needs --http and/or --udp")
        if config.private and config.allow is None and config.passkeys is None:
            raise ConfigError("--private needs --allow FILE and/or --passkeys FILE")
        if config.redis and config.state_db:
            raise ConfigError("--state-db and --redis are exclusive (redis already keeps the state)")
        self.config = config
        # Which peers an answer carries is picked with a fast PRNG seeded (and re-seeded every housekeeping
        # tick) from the OS: SystemRandom costs a getrandom() system call per number, which was a quarter of
        # the UDP hot path (docs/PERFORMANCE.md, Tracker).
        self._reseed = rng is None
        self._rng = rng or random.Random(secrets.randbits(128))
        allowed = read_info_hashes(config.allow) if config.allow else None
        passkeys = read_passkeys(config.passkeys) if config.passkeys else None
        self.backend: MemoryBackend | AsyncBackend
        if config.redis:
            from shoal.trackerd.redis_store import RedisBackend

            self.backend = RedisBackend(config, allowed=allowed, passkeys=passkeys)
        else:
            self.backend = MemoryBackend(Registry(config, self._rng, allowed=allowed, passkeys=passkeys))
        self.service = TrackerService(config, self.backend)
        self.http: HttpTracker | None = None
        self.http_address: tuple[str, int] | None = None
        self.udp_address: tuple[str, int] | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._udp: UdpTracker | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._state = StateDb(config.state_db) if config.state_db else None

    def reload(self) -> None:
        """Re-read the ``--allow`` and ``--passkeys`` files (SIGHUP); on a bad file the old lists stay."""
        cfg = self.config
        try:
            allowed = read_info_hashes(cfg.allow) if cfg.allow else None
            passkeys = read_passkeys(cfg.passkeys) if cfg.passkeys else None
        except ConfigError as exc:
            logger.warning("reload failed, keeping the old lists: %s", exc)
            return
        target: Registry | AsyncBackend = (
            self.backend.registry if isinstance(self.backend, MemoryBackend) else self.backend
        )
        target.allowed = allowed  # type: ignore[union-attr]
        target.passkeys = passkeys  # type: ignore[union-attr]
        logger.info(
            "reloaded: %s allowed info-hashes, %s passkeys",
            "any" if allowed is None else len(allowed),
            "no" if passkeys is None else len(passkeys),
        )

    async def __aenter__(self) -> TrackerServer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        if self._state is not None and isinstance(self.backend, MemoryBackend):
            n = self._state.load(self.backend.registry, loop.time(), time.time())
            logger.info("restored %d peers from %s", n, cfg.state_db)
        try:
            if cfg.http:
                host, port = parse_hostport(cfg.http)
                self.http = HttpTracker(self.service)
                self.http.start()
                sock = _socket(host, port, socket.SOCK_STREAM, cfg.reuse_port)
                self.http_address = sock.getsockname()[:2]
                self.http.listen(sock)
            if cfg.udp:
                host, port = parse_hostport(cfg.udp)
                sock = _socket(host, port, socket.SOCK_DGRAM, cfg.reuse_port)
                self.udp_address = sock.getsockname()[:2]
                secret = None
                if not isinstance(self.backend, MemoryBackend):
                    secret = await self.backend.shared_secret()
                self._udp = UdpTracker(self.service, secret)
                self._udp.attach(sock)
        except BaseException:
            await self.close()
            raise
        self._tasks.append(asyncio.create_task(self._housekeeping()))

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        next_save = loop.time() + cfg.save_every
        tick = min(5.0, cfg.expire_every)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            self.service.sample(now)
            if self._reseed:
                self._rng.seed(secrets.randbits(128))
            if isinstance(self.backend, MemoryBackend):
                # sweep every swarm about once per expire_every, a slice per tick
                reg = self.backend.registry
                share = max(1, int(len(reg.swarms) * tick / cfg.expire_every) + 1)
                gone = reg.expire(now, share)
                if gone:
                    logger.debug("expired %d peers", gone)
            if self._state is not None and now >= next_save and isinstance(self.backend, MemoryBackend):
                next_save = now + cfg.save_every
                snap = self._state.snapshot(self.backend.registry, now, time.time())
                await asyncio.to_thread(self._state.write, snap)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks.clear()
        for server in self._servers:
            server.close()
        if self.http is not None:
            self.http.close_all()
            for _ in range(100):  # let closed connections finish (bounded: at most ~1 s)
                if not self.http.connections:
                    break
                await asyncio.sleep(0.01)
        for server in self._servers:
            try:
                async with asyncio.timeout(5):
                    await server.wait_closed()
            except TimeoutError:
                pass
        self._servers.clear()
        if self._udp is not None:
            self._udp.detach()
            self._udp = None
        if self._state is not None and isinstance(self.backend, MemoryBackend):
            loop = asyncio.get_running_loop()
            self._state.save(self.backend.registry, loop.time(), time.time())
            self._state.close()
            self._state = None
        if not isinstance(self.backend, MemoryBackend):
            await self.backend.close()
