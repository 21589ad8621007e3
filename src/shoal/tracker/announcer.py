"""Per-torrent announce state machine over BEP 12 tiers. Sans-IO: driven by ``now``, randomness injected.

Theory of operation
-------------------
The trackers of a torrent form tiers (``announce-list``); each tier is shuffled once with the injected rng
(BEP 12). At any time at most one regular announce is in flight. The *candidate* is:

* the working tracker (the last one that answered), when its ``interval`` has passed; or, when there is none,
* the first tracker in tier order whose failure back-off has passed.

A tracker that answers moves to the front of its tier and becomes the working tracker. A tracker that fails gets
an exponential back-off (``retry_base * 2**(fails-1)``, capped at ``retry_max``, with +-10 % jitter) and the next
tracker in order is tried at once: within the tier first, then the following tiers.

Events: a tracker that has not yet accepted ``started`` from us gets ``started``; after :meth:`completed` the
working tracker gets ``completed`` once; after :meth:`stop` every tracker that accepted ``started`` gets one
``stopped`` (one attempt each) and :attr:`finished` becomes true when none is left.

Intervals from trackers are clamped to ``[min_interval, max_interval]`` (60 s .. 1 day by default);
:meth:`want_peers` asks for an early announce, but never before the tracker's ``min interval``.

The adapter loop is::

    for job in announcer.due(now): start it; later on_response(job, resp, now) or on_failure(job, err, now)
    sleep until announcer.next_announce_time()
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from urllib.parse import urlsplit

from shoal.records import record
from shoal.tracker.proto.messages import AnnounceResponse, Event

SUPPORTED_SCHEMES = ("http", "https", "udp")


@record
class AnnounceJob:
    """One announce the adapter should perform now."""

    url: str
    event: Event
    tracker_id: bytes | None


@record(frozen=False)
class TrackerState:
    """What we know about one tracker of the torrent (read it for status displays)."""

    url: str
    tier: int
    fails: int = 0
    retry_at: float = 0.0
    next_at: float = 0.0
    min_next_at: float = 0.0
    started: bool = False
    stop_done: bool = False
    in_flight: Event | None = None
    tracker_id: bytes | None = None
    last_error: str | None = None
    warning: str | None = None
    complete: int | None = None
    incomplete: int | None = None
    peers_last: int = 0


class Announcer:
    """Decides when to announce to which tracker of one torrent, with which event."""

    def __init__(
        self,
        tiers: Sequence[Sequence[str]],
        rng: random.Random,
        *,
        now: float = 0.0,
        min_interval: float = 60.0,
        max_interval: float = 86400.0,
        default_interval: float = 1800.0,
        retry_base: float = 15.0,
        retry_max: float = 3600.0,
    ) -> None:
        self._rng = rng
        self._min_interval = min_interval
        self._max_interval = max_interval
        self._default_interval = default_interval
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._tiers: list[list[TrackerState]] = []
        seen: set[str] = set()
        for urls in tiers:
            tier = [u for u in dict.fromkeys(urls) if _supported(u) and u not in seen]
            seen.update(tier)
            if tier:
                rng.shuffle(tier)
                index = len(self._tiers)
                self._tiers.append([TrackerState(u, index, retry_at=now, next_at=now) for u in tier])
        self._working: TrackerState | None = None
        self._completed_pending = False
        self._stopping = False

    # ------------------------------------------------------------ status

    @property
    def trackers(self) -> list[TrackerState]:
        """All trackers in the current try order."""
        return [t for tier in self._tiers for t in tier]

    @property
    def working(self) -> str | None:
        return self._working.url if self._working else None

    @property
    def finished(self) -> bool:
        """After :meth:`stop`: every ``stopped`` announce has been answered or has failed."""
        return self._stopping and not any(self._stop_pending(t) or t.in_flight for t in self.trackers)

    # ------------------------------------------------------------ inputs from the engine

    def completed(self, now: float) -> None:
        """The download finished: tell the working tracker (``completed``) at once."""
        self._completed_pending = True
        if self._working is not None:
            self._working.next_at = now

    def stop(self, now: float) -> None:
        """The torrent stops: send ``stopped`` to every tracker that knows us, and nothing else after."""
        self._stopping = True

    def want_peers(self, now: float) -> None:
        """Announce early for more peers (not before the working tracker's min interval)."""
        t = self._working
        if t is not None:
            t.next_at = min(t.next_at, max(now, t.min_next_at))

    # ------------------------------------------------------------ decisions

    def _stop_pending(self, t: TrackerState) -> bool:
        return t.started and not t.stop_done

    def _candidate(self, now: float | None) -> TrackerState | None:
        """The working tracker; else the first in order whose back-off passed by ``now``; else the
        one whose back-off ends first (``now=None`` asks only for that)."""
        if self._working is not None:
            return self._working
        order = self.trackers
        if now is not None:
            for t in order:
                if t.retry_at <= now:
                    return t
        return min(order, key=lambda t: t.retry_at, default=None)

    def next_announce_time(self) -> float | None:
        """When :meth:`due` will next return a job; None when waiting for an answer or nothing is left."""
        if self._stopping:
            pending = [t for t in self.trackers if self._stop_pending(t) and t.in_flight is None]
            return 0.0 if pending else None
        if any(t.in_flight for t in self.trackers):
            return None
        t = self._candidate(None)
        if t is None:
            return None
        return t.next_at if t is self._working else t.retry_at

    def due(self, now: float) -> list[AnnounceJob]:
        """The announces to perform at ``now`` (each tracker is then in flight until its answer)."""
        if self._stopping:
            jobs = []
            for t in self.trackers:
                if self._stop_pending(t) and t.in_flight is None:
                    t.in_flight = Event.STOPPED
                    jobs.append(AnnounceJob(t.url, Event.STOPPED, t.tracker_id))
            return jobs
        when = self.next_announce_time()
        if when is None or when > now:
            return []
        cand = self._candidate(now)
        if cand is None:
            return []
        t = cand
        if not t.started:
            event = Event.STARTED
        elif self._completed_pending:
            event = Event.COMPLETED
        else:
            event = Event.NONE
        t.in_flight = event
        return [AnnounceJob(t.url, event, t.tracker_id)]

    # ------------------------------------------------------------ results from the adapter

    def _find(self, url: str) -> TrackerState:
        for t in self.trackers:
            if t.url == url:
                return t
        raise KeyError(url)

    def on_response(self, job: AnnounceJob, response: AnnounceResponse, now: float) -> None:
        t = self._find(job.url)
        t.in_flight = None
        t.fails = 0
        t.last_error = None
        t.warning = response.warning
        if response.tracker_id is not None:
            t.tracker_id = response.tracker_id
        if job.event is Event.STOPPED:
            t.stop_done = True
            t.started = False
            return
        t.started = True
        if job.event is Event.COMPLETED:
            self._completed_pending = False
        interval = min(max(response.interval, self._min_interval), self._max_interval)
        min_iv = response.min_interval if response.min_interval is not None else self._min_interval
        min_iv = min(max(min_iv, self._min_interval), interval)
        t.next_at = now + interval
        t.min_next_at = now + min_iv
        t.complete, t.incomplete, t.peers_last = response.complete, response.incomplete, len(response.peers)
        tier = self._tiers[t.tier]
        tier.remove(t)
        tier.insert(0, t)
        self._working = t

    def on_failure(self, job: AnnounceJob, error: str, now: float) -> None:
        t = self._find(job.url)
        t.in_flight = None
        t.last_error = error
        if job.event is Event.STOPPED:
            t.stop_done = True  # one attempt only: we are leaving anyway
            return
        t.fails += 1
        delay = min(self._retry_base * 2 ** min(t.fails - 1, 20), self._retry_max)
        t.retry_at = now + delay * self._rng.uniform(0.9, 1.1)
        if self._working is t:
            self._working = None


def _supported(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in SUPPORTED_SCHEMES and bool(parts.hostname)
