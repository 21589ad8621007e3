"""A tiny in-process HTTP tracker for ``shoal demo`` (loopback only, compact IPv4 peers, no scrape).

Not a real tracker: ``shoal tracker`` is. This one exists so the demo runs on a machine with nothing else.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time

from aiohttp import web

from shoal.codec.bencode import encode

_INTERVAL = 5


class MiniTracker:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._swarms: dict[bytes, dict[tuple[str, int], tuple[float, bool]]] = {}
        self._runner: web.AppRunner | None = None
        self.announces = 0

    @property
    def announce_url(self) -> str:
        return f"http://{self.host}:{self.port}/announce"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/announce", self._announce)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _announce(self, request: web.Request) -> web.Response:
        self.announces += 1
        raw = request.rel_url.raw_query_string
        fields: dict[str, bytes] = {}
        from urllib.parse import unquote_to_bytes

        for part in raw.split("&"):
            name, _, value = part.partition("=")
            fields[name] = unquote_to_bytes(value)
        info_hash = fields.get("info_hash", b"")
        try:
            port = int(fields.get("port", b"0"))
            left = int(fields.get("left", b"0"))
        except ValueError:
            return web.Response(body=encode({b"failure reason": b"bad port or left"}))
        if len(info_hash) != 20 or not 0 < port < 65536:
            return web.Response(body=encode({b"failure reason": b"bad info_hash or port"}))
        peer_host = request.remote or "127.0.0.1"
        swarm = self._swarms.setdefault(info_hash, {})
        me = (peer_host, port)
        if fields.get("event") == b"stopped":
            swarm.pop(me, None)
        else:
            swarm[me] = (time.monotonic(), left == 0)
        peers = b""
        for (host, p), _ in swarm.items():
            if (host, p) == me:
                continue
            try:
                addr = ipaddress.IPv4Address(host)
            except ValueError:
                continue
            peers += addr.packed + struct.pack(">H", p)
        complete = sum(1 for _, seed in swarm.values() if seed)
        body = {
            b"interval": _INTERVAL,
            b"min interval": 1,
            b"complete": complete,
            b"incomplete": len(swarm) - complete,
            b"peers": peers,
        }
        return web.Response(body=encode(body))
