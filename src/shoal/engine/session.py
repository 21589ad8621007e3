"""The session: torrents, the listening socket, connection limits and alerts, as an async context manager.

::

    async with Session(listen=("127.0.0.1", 0)) as session:
        torrent = await session.add("file.torrent", save_path="downloads")
        await torrent.wait_complete(timeout=600)

Dependencies are injected (``network``, ``clock``, ``rng``, ``storage_factory``) so a simulation can swap them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shoal.clock import Clock, MonotonicClock
from shoal.config import Settings
from shoal.engine import alerts as al
from shoal.engine.handle import AddTorrentParams, Torrent
from shoal.engine.net import Listener, Network, RealNetwork
from shoal.engine.sources import resolve_source
from shoal.errors import ConfigError, NetworkError
from shoal.types import PeerAddr, PeerId
from shoal.wire.handshake import Reserved, make_peer_id

logger = logging.getLogger(__name__)


class Session:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        listen: tuple[str, int] | None = ("0.0.0.0", 6881),
        network: Network | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        storage_factory: Callable[..., Any] | None = None,
        max_alerts: int | None = None,
        dht: Any = None,
        lsd: bool = False,
    ) -> None:
        self.settings = settings or Settings()
        # peer discovery without trackers (shoal.engine.discovery): a DhtService, started with the session
        # unless already running, and LSD on the LAN
        self.dht = dht
        self._lsd = lsd
        self.discovery: Any = None
        self.network: Network = network or RealNetwork()
        self.clock: Clock = clock or MonotonicClock()
        self.rng = rng or random.Random()
        self.storage_factory = storage_factory
        self.peer_id = PeerId(make_peer_id(self.rng))  # BEP 20: -SH0100- and 12 random characters
        self.tracker_key = self.rng.getrandbits(32)
        self._tracker_client: Any = None
        self._listen = listen
        self._listener: Listener | None = None
        self._alerts = al.AlertQueue(max_alerts or self.settings.max_alerts)
        self._torrents: dict[bytes, Any] = {}  # info-hash (v1 and truncated v2) -> TorrentTask
        self._started = False
        self.connections = 0  # live peer connections, all torrents
        self.half_open = 0
        self.download_limit = self.settings.download_rate_limit
        self.upload_limit = self.settings.upload_rate_limit
        self.global_down: Any = None
        self.global_up: Any = None
        # torrents checking their data at once (the rest wait in CHECKING): bounds the hash buffers and threads a
        # thousand torrents starting together would take
        self.checking_slots = asyncio.Semaphore(max(1, self.settings.max_checking_torrents))
        # torrents whose tick runs, in one loop every engine_tick_interval (a thousand torrents: one timer, not a
        # thousand tasks each sleeping)
        self._ticking: dict[Any, None] = {}
        self._ticker: asyncio.Task[None] | None = None
        # one resume database (SQLite connection) per folder, shared by the torrents saved there
        self._resume_stores: dict[Path, asyncio.Future[Any]] = {}

    # --- lifecycle -------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Session:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        from shoal.engine.rates import make_bucket

        self.global_down = make_bucket(self.download_limit, self.clock)
        self.global_up = make_bucket(self.upload_limit, self.clock)
        if self._listen is not None:
            from shoal.engine.listener import incoming_factory

            host, port = self._listen
            # A taken port (another client running) falls back to the next few, like other clients do.
            tries = (
                [port] if port == 0 else [port + i for i in range(max(1, self.settings.listen_port_tries))]
            )
            for attempt in tries:
                try:
                    self._listener = await self.network.listen_tcp(host, attempt, incoming_factory(self))
                    break
                except NetworkError as exc:
                    self.post(al.ListenFailed(b"", host, attempt, str(exc)))
                    if attempt == tries[-1] or attempt >= 65535:
                        raise
            assert self._listener is not None
            for addr in self._listener.addresses:
                self.post(al.ListenSucceeded(b"", addr.host, addr.port))
        from shoal.engine.discovery import Discovery

        self.discovery = await Discovery.start(self, self.dht, self._lsd)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()  # accept nobody new while the torrents stop
        tasks = list({id(t): t for t in self._torrents.values()}.values())
        await asyncio.gather(*(t.stop() for t in tasks), return_exceptions=True)
        self._torrents.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        if self._listener is not None:
            try:
                async with asyncio.timeout(2):
                    await self._listener.wait_closed()
            except TimeoutError:
                pass
            self._listener = None
        await self._close_resume_stores()
        if self._tracker_client is not None:
            await self._tracker_client.close()
            self._tracker_client = None
        if self.discovery is not None:
            await self.discovery.close()
            self.discovery = None
        self._alerts.close()
        self._started = False

    def start_ticking(self, task: Any) -> None:
        self._ticking[task] = None
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.ensure_future(self._tick_all())

    def stop_ticking(self, task: Any) -> None:
        self._ticking.pop(task, None)

    async def _tick_all(self) -> None:
        interval = self.settings.engine_tick_interval
        turn = 0
        while True:
            await asyncio.sleep(interval)
            tasks = list(self._ticking)
            if not tasks:
                continue
            # a different torrent goes first each tick: under a session-wide limit the first to serve its peers
            # takes what the shared bucket holds, so a fixed order would give one torrent all of it
            turn = (turn + 1) % len(tasks)
            for task in tasks[turn:] + tasks[:turn]:
                task.run_tick()

    async def resume_store(self, save_path: Path) -> Any:
        """The resume database for torrents saved under ``save_path`` (``save_path/.shoal/resume.sqlite``), opened
        once on a worker thread and shared: a thousand torrents in one folder are one SQLite connection, not a
        thousand (each with its own page cache and start-up integrity check). None if it cannot be opened."""
        from shoal.engine.checking import open_resume_store, resume_path

        path = Path(os.path.abspath(resume_path(save_path)))
        fut = self._resume_stores.get(path)
        if fut is None:
            fut = self._resume_stores[path] = asyncio.ensure_future(
                asyncio.to_thread(open_resume_store, path)
            )
        return await asyncio.shield(fut)  # one torrent giving up (stopped) does not cancel it for the others

    async def _close_resume_stores(self) -> None:
        stores, self._resume_stores = self._resume_stores, {}
        for fut in stores.values():
            if not fut.done():
                await asyncio.wait([fut], timeout=10)
            if fut.done() and not fut.cancelled() and fut.exception() is None and fut.result() is not None:
                await asyncio.to_thread(fut.result().close)

    # --- properties ------------------------------------------------------------------------------------------

    @property
    def listen_port(self) -> int:
        if self._listener is None or not self._listener.addresses:
            return 0
        return self._listener.addresses[0].port

    @property
    def listen_addresses(self) -> list[PeerAddr]:
        return [] if self._listener is None else self._listener.addresses

    def alerts(self) -> al.AlertQueue:
        """The session's alert queue; ``async for alert in session.alerts()``."""
        return self._alerts

    def post(self, alert: al.Alert) -> None:
        self._alerts.post(alert)

    def torrents(self) -> list[Torrent]:
        seen: dict[int, Torrent] = {}
        for task in self._torrents.values():
            seen.setdefault(id(task), Torrent(task))
        return list(seen.values())

    def find(self, info_hash: bytes) -> Torrent | None:
        task = self._torrents.get(info_hash)
        return None if task is None else Torrent(task)

    def set_rate_limits(self, download: int | None = None, upload: int | None = None) -> None:
        """Session-wide limits in bytes per second; 0 means unlimited."""
        from shoal.engine.rates import make_bucket

        if download is not None:
            self.download_limit = download
            self.global_down = make_bucket(download, self.clock)
        if upload is not None:
            self.upload_limit = upload
            self.global_up = make_bucket(upload, self.clock)

    # --- torrents --------------------------------------------------------------------------------------------

    async def add(self, source: Any, save_path: str | Path | None = None, **options: Any) -> Torrent:
        """Add a torrent from a path, bytes, Metainfo, magnet URI or URL; options are AddTorrentParams fields."""
        if not self._started:
            raise ConfigError("session not started: use 'async with Session(...)'")
        if save_path is not None:
            options["save_path"] = Path(
                save_path
            )  # (the default, the current folder, is a getcwd per torrent)
        params = AddTorrentParams(source=source, **options)
        from shoal.engine.torrent import TorrentTask

        resolved = await resolve_source(params.source, self.settings)
        existing = self._torrents.get(resolved.info_hash)
        if existing is not None:
            return Torrent(existing)
        task = TorrentTask(self, resolved, params)
        for key in task.info_hashes:
            self._torrents[key] = task
        self.post(al.TorrentAdded(task.info_hash, task.name))
        await task.start()
        return Torrent(task)

    async def remove(self, torrent: Torrent) -> None:
        task = self._torrents.get(torrent.info_hash)
        if task is None:
            return
        await task.stop()
        for key in [k for k, v in self._torrents.items() if v is task]:
            del self._torrents[key]
        self.post(al.TorrentRemoved(task.info_hash))

    def route(self, info_hash: bytes) -> Any:
        """The running TorrentTask for an incoming handshake, or None."""
        return self._torrents.get(info_hash)

    def mse_skey(self, req2: bytes) -> bytes | None:
        """The info-hash an MSE handshake names by ``HASH('req2', info-hash)``, if we have that torrent."""
        from shoal.wire.mse import req2_hash

        for info_hash in self._torrents:
            if req2_hash(info_hash) == req2:
                return info_hash
        return None

    def reserved(self) -> Reserved:
        """Our handshake's reserved bits: extension protocol, fast extension, and DHT when a node runs."""
        return Reserved.make(extension=True, fast=True, dht=self.dht is not None)

    def tracker_client(self) -> Any:
        """The session's shared tracker client (created on first use)."""
        if self._tracker_client is None:
            from shoal.tracker.client import TrackerClient

            self._tracker_client = TrackerClient(self.settings, rng=self.rng, clock=self.clock)
        return self._tracker_client

    def can_connect(self) -> bool:
        s = self.settings
        return self.connections < s.max_peers_global and self.half_open < s.max_half_open
