"""Random announce / stop / expiry sequences keep the registry's indexes consistent (hypothesis)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.tracker.proto.messages import Event
from shoal.trackerd.config import TrackerdConfig
from shoal.trackerd.registry import Registry, ServerAnnounce

HASHES = [bytes([i]) * 20 for i in range(3)]
ADDRS = [bytes([10, 0, 0, i, 0, 80]) for i in range(6)] + [bytes(15) + bytes([i, 0, 80]) for i in range(3)]

op = st.tuples(
    st.sampled_from(HASHES),
    st.sampled_from(ADDRS),
    st.integers(0, 1),  # left: seeder or leecher
    st.sampled_from(list(Event)),
    st.integers(0, 10),  # numwant
    st.floats(0, 50),  # time step
)


def check(reg: Registry) -> None:
    total = 0
    for swarm in reg.swarms.values():
        for plist, seeder in ((swarm.seeders, True), (swarm.leechers, False)):
            assert len(plist.items) == len(plist.addrs) == len(plist.index)
            assert plist.v6 == sum(len(a) == 18 for a in plist.addrs)
            for i, (peer, addr) in enumerate(zip(plist.items, plist.addrs, strict=True)):
                assert peer.addr == addr and plist.index[addr] == i and peer.seeder is seeder
            total += len(plist.items)
        assert not set(swarm.seeders.index) & set(swarm.leechers.index)
    assert total == reg.peer_count


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=60), st.integers(0, 2**32))
def test_registry_stays_consistent(ops: list[tuple[bytes, bytes, int, Event, int, float]], seed: int) -> None:
    reg = Registry(TrackerdConfig(peer_timeout=100.0, max_numwant=8), random.Random(seed))
    now = 0.0
    for ih, addr, left, event, numwant, step in ops:
        now += step
        res = reg.announce(ServerAnnounce(ih, b"p" * 20, addr, left, event, numwant), now)
        assert addr not in res.peers  # never itself
        assert len(res.peers) == len(set(res.peers)) <= min(numwant, 8)
        swarm = reg.swarms.get(ih)
        if swarm is not None and left == 0:
            assert not set(res.peers) & set(swarm.seeders.index)  # seeders are not sent to seeders
        if event is Event.STOPPED:
            assert res.peers == [] and (swarm is None or swarm.get(addr) is None)
        check(reg)
        if step > 40:
            reg.expire(now, max_swarms=2)
            check(reg)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 60), st.booleans(), st.integers(0, 2**32))
def test_answers_are_the_right_size_without_self_or_duplicates(
    n_seeders: int, n_leechers: int, numwant: int, as_seeder: bool, seed: int
) -> None:
    cfg = TrackerdConfig(max_numwant=60)
    reg = Registry(cfg, random.Random(seed))
    ih = HASHES[0]
    for i in range(n_seeders + n_leechers):
        reg.announce(ServerAnnounce(ih, bytes(20), bytes([10, 1, i, 0, 0, 80]), int(i >= n_seeders)), 0.0)
    own = bytes([10, 2, 0, 0, 0, 80])
    res = reg.announce(ServerAnnounce(ih, bytes(20), own, 0 if as_seeder else 1, numwant=numwant), 1.0)
    eligible = n_leechers + (0 if as_seeder else n_seeders)
    assert len(res.peers) == min(numwant, eligible)
    assert own not in res.peers and len(set(res.peers)) == len(res.peers)
    if as_seeder:
        assert all(reg.swarms[ih].leechers.index.get(a) is not None for a in res.peers)
