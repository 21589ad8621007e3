"""The network seam: how the engine opens and accepts TCP connections.

The engine only talks to a :class:`Network`; :class:`RealNetwork` uses the running asyncio loop (uvloop when the
CLI installed it). A simulated network for deterministic tests can implement the same protocol. OS errors are
mapped to :class:`~shoal.errors.NetworkError` here, at the one boundary.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Protocol

from shoal.errors import NetworkError
from shoal.types import PeerAddr

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class Listener(Protocol):
    @property
    def addresses(self) -> list[PeerAddr]: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


class Network(Protocol):
    async def open_tcp(
        self, addr: PeerAddr, factory: ProtocolFactory, timeout: float
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]: ...

    async def listen_tcp(self, host: str, port: int, factory: ProtocolFactory) -> Listener: ...


class _ServerListener:
    def __init__(self, server: asyncio.Server) -> None:
        self._server = server

    @property
    def addresses(self) -> list[PeerAddr]:
        out = []
        for sock in self._server.sockets:
            name = sock.getsockname()
            out.append(PeerAddr(str(name[0]), int(name[1])))
        return out

    def close(self) -> None:
        self._server.close()

    async def wait_closed(self) -> None:
        await self._server.wait_closed()


def _tune(sock: socket.socket | None, buffer_size: int) -> None:
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if buffer_size:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_size)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer_size)
    except OSError:
        pass


class RealNetwork:
    """TCP over the running event loop."""

    def __init__(self, socket_buffer_size: int = 0) -> None:
        self.socket_buffer_size = socket_buffer_size

    async def open_tcp(
        self, addr: PeerAddr, factory: ProtocolFactory, timeout: float
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(factory, addr.host, addr.port)
        except TimeoutError:
            raise NetworkError(f"connect to {addr.host}:{addr.port} timed out after {timeout}s")
        except OSError as exc:
            raise NetworkError(f"connect to {addr.host}:{addr.port} failed: {exc.strerror or exc}")
        _tune(transport.get_extra_info("socket"), self.socket_buffer_size)
        return transport, protocol

    async def listen_tcp(self, host: str, port: int, factory: ProtocolFactory) -> Listener:
        loop = asyncio.get_running_loop()
        hosts: str | list[str] | None = host
        if host in ("", "*"):
            hosts = None
        try:
            server = await loop.create_server(factory, hosts, port, reuse_address=True)
        except OSError as exc:
            raise NetworkError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        for sock in server.sockets:
            _tune(sock, self.socket_buffer_size)
        return _ServerListener(server)
