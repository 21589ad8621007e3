"""Tracker announces for one torrent: the tracker client's :class:`AnnounceDriver` fed from the torrent's counters.

Peers from every answer go to the torrent's peer book. Alerts report each answer and failure. The session owns one
:class:`~shoal.tracker.client.TrackerClient` shared by its torrents.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

from shoal.engine import alerts as al
from shoal.errors import TrackerError
from shoal.tracker.announcer import Announcer
from shoal.tracker.client import AnnounceDriver, TrackerClient
from shoal.tracker.proto.messages import AnnounceRequest, Event
from shoal.types import PeerAddr

if TYPE_CHECKING:
    from shoal.engine.torrent import TorrentTask

logger = logging.getLogger(__name__)


class _ReportingClient:
    """The session's tracker client, with every failed announce also posted as a ``TrackerFailed`` alert."""

    def __init__(self, task: TorrentTask, client: Any) -> None:
        self._task = task
        self._client = client

    async def announce(self, url: str, req: AnnounceRequest) -> Any:
        try:
            return await self._client.announce(url, req)
        except TrackerError as exc:
            text = exc.failure_reason or str(exc)
            self._task.session.post(al.TrackerFailed(self._task.info_hash, url, text))
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class TorrentAnnouncer:
    def __init__(self, task: TorrentTask, tiers: list[list[str]]) -> None:
        self.task = task
        s = task.settings
        clock = task.session.clock
        self.announcer = Announcer(
            tiers,
            task.session.rng,
            now=clock.now(),
            min_interval=s.tracker_min_interval,
            max_interval=s.tracker_max_interval,
            default_interval=s.tracker_default_interval,
            retry_base=s.tracker_retry_base,
            retry_max=s.tracker_retry_max,
        )
        self.driver = AnnounceDriver(
            self.announcer,
            cast(TrackerClient, _ReportingClient(task, task.session.tracker_client())),
            self._request,
            self._on_peers,
            clock=clock,
        )
        self._runner: asyncio.Task[None] | None = None

    def _request(self, event: Event) -> AnnounceRequest:
        t = self.task
        up, down, left = t.announce_counters()
        return AnnounceRequest(
            info_hash=t.info_hash,
            peer_id=t.session.peer_id,
            port=t.session.listen_port or 6881,
            uploaded=up,
            downloaded=down,
            left=left,
            event=event,
            numwant=t.settings.tracker_numwant,
            key=t.session.tracker_key,
        )

    def _on_peers(self, peers: list[PeerAddr]) -> None:
        t = self.task
        url = self.announcer.working or ""
        t.session.post(al.TrackerReply(t.info_hash, url, len(peers)))
        t.add_peers(peers, source="tracker")

    async def run(self) -> None:
        self._runner = asyncio.current_task()
        await self.driver.run()

    def completed(self) -> None:
        self.driver.completed()

    def want_peers(self) -> None:
        self.driver.want_peers()

    async def stop(self, timeout: float) -> None:
        if self._runner is None or self._runner.done():
            return
        await self.driver.stop(self._runner, timeout)

    def trackers(self) -> list[tuple[str, int, str]]:
        """(url, fails, working?) for status displays."""
        working = self.announcer.working
        return [(t.url, t.fails, "working" if t.url == working else "") for t in self.announcer.trackers]
