from __future__ import annotations

import random

from shoal.tracker.announcer import Announcer
from shoal.tracker.proto.messages import AnnounceResponse, Event

OK = AnnounceResponse(interval=1800.0, min_interval=300.0)


def make(tiers: list[list[str]], seed: int = 1) -> Announcer:
    return Announcer(tiers, random.Random(seed), now=0.0)


def test_first_announce_is_started_then_interval() -> None:
    a = make([["http://a/announce"]])
    assert a.next_announce_time() == 0.0
    [job] = a.due(0.0)
    assert job.event is Event.STARTED
    assert a.due(0.0) == [] and a.next_announce_time() is None  # in flight
    a.on_response(job, OK, 10.0)
    assert a.next_announce_time() == 1810.0
    assert a.due(1809.0) == []
    [job2] = a.due(1810.0)
    assert job2.event is Event.NONE and job2.url == "http://a/announce"


def test_unsupported_schemes_and_duplicates_dropped() -> None:
    a = make([["file:///etc/passwd", "gopher://x/", "http://a/announce"], ["http://a/announce", "udp://b:1"]])
    assert [t.url for t in a.trackers] == ["http://a/announce", "udp://b:1"]


def test_tier_shuffle_uses_rng() -> None:
    urls = [f"http://t{i}/announce" for i in range(8)]
    orders = {tuple(t.url for t in make([urls], seed).trackers) for seed in range(5)}
    assert len(orders) > 1
    assert [t.url for t in make([urls], 3).trackers] == [t.url for t in make([urls], 3).trackers]


def test_failover_within_tier_then_across_tiers_and_move_to_front() -> None:
    a = make([["http://a1/announce", "http://a2/announce"], ["http://b/announce"]])
    first, second = (t.url for t in a.trackers[:2])
    [j1] = a.due(0.0)
    assert j1.url == first
    a.on_failure(j1, "timeout", 1.0)
    [j2] = a.due(1.0)
    assert j2.url == second
    a.on_failure(j2, "timeout", 2.0)
    [j3] = a.due(2.0)
    assert j3.url == "http://b/announce" and j3.event is Event.STARTED
    a.on_failure(j3, "timeout", 3.0)
    # all failed: wait for the earliest back-off (about 15 s)
    when = a.next_announce_time()
    assert when is not None and 14.0 < when < 18.0
    assert a.due(when - 0.01) == []
    [j4] = a.due(when)
    assert j4.url == first
    a.on_failure(j4, "again", when)
    [j5] = a.due(20.0)
    assert j5.url == second
    a.on_response(j5, OK, 20.0)
    assert a.trackers[0].url == second  # moved to the front of its tier
    assert a.working == second


def test_backoff_doubles_and_is_capped() -> None:
    a = Announcer([["http://a/announce"]], random.Random(0), retry_base=10.0, retry_max=100.0)
    now = 0.0
    delays = []
    for _ in range(6):
        [job] = a.due(now)
        a.on_failure(job, "x", now)
        t = a.next_announce_time()
        assert t is not None
        delays.append(t - now)
        now = t
    assert 9 <= delays[0] <= 11 and 18 <= delays[1] <= 22 and 36 <= delays[2] <= 44
    assert all(d <= 110 for d in delays) and delays[-1] >= 90


def test_intervals_clamped() -> None:
    a = make([["http://a/announce"]])
    [job] = a.due(0.0)
    a.on_response(job, AnnounceResponse(interval=1.0, min_interval=0.0), 0.0)
    assert a.next_announce_time() == 60.0
    [job] = a.due(60.0)
    a.on_response(job, AnnounceResponse(interval=1e12), 60.0)
    assert a.next_announce_time() == 60.0 + 86400.0


def test_completed_sent_once_to_working_tracker() -> None:
    a = make([["http://a/announce"]])
    [job] = a.due(0.0)
    a.on_response(job, OK, 0.0)
    a.completed(100.0)
    [job] = a.due(100.0)
    assert job.event is Event.COMPLETED
    a.on_failure(job, "x", 100.0)
    when = a.next_announce_time()
    assert when is not None
    [job] = a.due(when)
    assert job.event is Event.COMPLETED  # retried until a tracker took it
    a.on_response(job, OK, when)
    [job] = a.due(when + 1800.0)
    assert job.event is Event.NONE


def test_want_peers_respects_min_interval() -> None:
    a = make([["http://a/announce"]])
    [job] = a.due(0.0)
    a.on_response(job, OK, 0.0)
    a.want_peers(10.0)
    assert a.next_announce_time() == 300.0
    a.want_peers(200.0)
    assert a.next_announce_time() == 300.0  # never later, never before min interval


def test_stop_sends_stopped_only_to_started_trackers() -> None:
    a = make([["http://a/announce"], ["http://b/announce"]])
    [job] = a.due(0.0)
    a.on_response(job, OK, 0.0)
    a.stop(5.0)
    jobs = a.due(5.0)
    assert [(j.url, j.event) for j in jobs] == [(job.url, Event.STOPPED)]
    assert not a.finished
    a.on_failure(jobs[0], "x", 6.0)
    assert a.finished and a.due(7.0) == [] and a.next_announce_time() is None


def test_stop_before_any_answer_is_finished() -> None:
    a = make([["http://a/announce"]])
    a.stop(0.0)
    assert a.finished and a.due(0.0) == []


def test_tracker_id_echoed() -> None:
    a = make([["http://a/announce"]])
    [job] = a.due(0.0)
    a.on_response(job, AnnounceResponse(interval=60.0, tracker_id=b"T1"), 0.0)
    [job] = a.due(60.0)
    assert job.tracker_id == b"T1"


def test_no_trackers() -> None:
    a = make([[]])
    assert a.next_announce_time() is None and a.due(0.0) == []
