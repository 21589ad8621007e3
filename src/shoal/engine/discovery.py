"""Peer discovery without trackers for the session's torrents: the DHT (BEP 5) and LSD (BEP 14).

The session holds one :class:`Discovery` (``session.discovery``) when it was given a DHT service or asked for
LSD. For each torrent, :meth:`Discovery.run_torrent` (spawned by the torrent task next to its tracker
announces) runs a get_peers lookup that also announces our listen port, feeds the peers found to the torrent
as source ``"dht"``, and repeats every ``dht_announce_interval`` seconds, or every ``dht_retry_interval``
while the torrent has no peers. LSD announces the torrent on the LAN and routes LAN peers back by info-hash.

Private torrents (BEP 27) use neither: a torrent added from a .torrent with ``private=1`` is never looked up or
announced; a magnet is looked up only until its metadata says it is private.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from shoal.errors import ShoalError
from shoal.types import PeerAddr

if TYPE_CHECKING:
    from shoal.dht.service import DhtService
    from shoal.engine.lsd import LsdService
    from shoal.engine.session import Session
    from shoal.engine.torrent import TorrentTask

logger = logging.getLogger(__name__)


def is_private(task: TorrentTask) -> bool:
    info = (
        task.info if task.info is not None else (task.source.metainfo.info if task.source.metainfo else None)
    )
    return bool(getattr(info, "private", False))


class Discovery:
    def __init__(self, session: Session, dht: DhtService | None, lsd: LsdService | None) -> None:
        self.session = session
        self.dht = dht
        self.lsd = lsd
        self.owns_dht = False
        self.counters: Counter[str] = Counter()
        self._running: set[bytes] = set()

    # ------------------------------------------------------------------ session lifecycle

    @classmethod
    async def start(cls, session: Session, dht: DhtService | None, lsd: bool) -> Discovery | None:
        if dht is None and not lsd:
            return None
        self = cls(session, dht, None)
        if dht is not None and dht.node is None:
            await dht.start()
            self.owns_dht = True
        if lsd:
            from shoal.engine.lsd import LsdService

            service = LsdService(
                session.settings, listen_port=session.listen_port or 6881, on_peer=self._lsd_peer
            )
            try:
                await service.start()
                self.lsd = service
            except ShoalError as exc:
                logger.warning("lsd: disabled: %s", exc)
        return self

    async def close(self) -> None:
        if self.lsd is not None:
            await self.lsd.close()
            self.lsd = None
        if self.dht is not None and self.owns_dht:
            await self.dht.close()

    def _lsd_peer(self, info_hash: bytes, peer: PeerAddr) -> None:
        task = self.session.route(info_hash)
        if task is not None and not is_private(task):
            self.counters["lsd_peers"] += 1
            task.add_peers([peer], source="lsd")

    # ------------------------------------------------------------------ per torrent

    def start_torrent(self, task: TorrentTask) -> None:
        """Spawn the discovery loop of ``task`` once (called when its tracker announces start)."""
        if task.info_hash in self._running or is_private(task):
            return
        self._running.add(task.info_hash)
        task.spawn(self.run_torrent(task))

    async def run_torrent(self, task: TorrentTask) -> None:
        s = task.settings
        try:
            if self.lsd is not None:
                self.lsd.add_torrent(task.info_hash, private=is_private(task))
            if self.dht is None:
                return
            while not is_private(task):
                await self._lookup(task)
                wait = s.dht_announce_interval if task.peers.count() else s.dht_retry_interval
                await asyncio.sleep(wait)
        finally:
            self._running.discard(task.info_hash)
            if self.lsd is not None:
                self.lsd.remove_torrent(task.info_hash)

    async def _lookup(self, task: TorrentTask) -> None:
        assert self.dht is not None
        port = self.session.listen_port or None
        self.counters["dht_lookups"] += 1
        try:
            async for batch in self.dht.iter_peers(task.info_hash, announce_port=port):
                if is_private(task):
                    return
                self.counters["dht_peers"] += len(batch)
                task.add_peers(batch, source="dht")
        except ShoalError as exc:
            self.counters["dht_errors"] += 1
            logger.info("torrent %s: dht lookup failed: %s", task.name, exc)
            return
        st = self.stats()
        logger.info(
            "torrent %s: dht lookup done: %d nodes known, %d lookups in flight, %d peers from the dht so far",
            task.name,
            st.get("dht_nodes", 0),
            st.get("dht_lookups_in_flight", 0),
            st.get("dht_peers", 0),
        )

    # ------------------------------------------------------------------ status

    def stats(self) -> dict[str, Any]:
        """For ``shoal get -v`` and the API: DHT nodes known, lookups in flight, peers found per source."""
        out: dict[str, Any] = dict(self.counters)
        if self.dht is not None and self.dht.node is not None:
            st = self.dht.stats()
            out.update(
                dht_nodes=st.nodes4 + st.nodes6,
                dht_lookups_in_flight=st.lookups,
                dht_pending_queries=st.pending_queries,
                dht_port=self.dht.port,
            )
        if self.lsd is not None:
            out.update(lsd_sent=self.lsd.counters["sent"], lsd_received=self.lsd.counters["received"])
        return out
