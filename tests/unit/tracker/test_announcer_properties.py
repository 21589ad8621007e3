"""Random answers and failures never break the announcer's rules (hypothesis)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.tracker.announcer import Announcer
from shoal.tracker.proto.messages import AnnounceResponse, Event

TIERS = [["http://a1/announce", "http://a2/announce"], ["udp://b:1"], ["http://c/announce"]]

step = st.tuples(
    st.booleans(),  # does the tracker answer?
    st.floats(0, 10**6),  # answered interval (clamped by the announcer)
    st.sampled_from(["none", "completed", "want_peers", "stop"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=40), st.integers(0, 2**32))
def test_announcer_rules(steps: list[tuple[bool, float, str]], seed: int) -> None:
    a = Announcer(TIERS, random.Random(seed))
    now = 0.0
    started: set[str] = set()
    stopped: set[str] = set()
    stopping = False
    for ok, interval, action in steps:
        if action == "completed":
            a.completed(now)
        elif action == "want_peers":
            a.want_peers(now)
        elif action == "stop":
            a.stop(now)
            stopping = True
        when = a.next_announce_time()
        if when is None:  # every job was answered, so only a finished stop leaves nothing to do
            assert stopping and a.finished
            break
        now = max(now, when)
        jobs = a.due(now)
        assert jobs, "due() must return a job at next_announce_time()"
        if not stopping:
            assert len(jobs) == 1
        for job in jobs:
            if job.event is Event.STOPPED:
                assert job.url in started and job.url not in stopped
            elif job.url not in started:
                assert job.event is Event.STARTED
            assert a.due(now) == []  # nothing more while in flight
            if ok:
                a.on_response(job, AnnounceResponse(interval=interval), now)
                if job.event is Event.STOPPED:
                    stopped.add(job.url)
                    started.discard(job.url)
                else:
                    started.add(job.url)
                    t = next(t for t in a.trackers if t.url == job.url)
                    # compared as sums: next_at - now can round to 59.999... when now is not a whole number
                    assert now + 60.0 <= t.next_at <= now + 86400.0
            else:
                a.on_failure(job, "x", now)
                if job.event is Event.STOPPED:
                    started.discard(job.url)
        now += 1.0
    if stopping:
        for job in a.due(now):
            a.on_failure(job, "x", now)
        assert a.finished
