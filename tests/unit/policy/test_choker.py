"""Choker: tit-for-tat while leeching, fair round robin while seeding, optimistic rotation."""

from __future__ import annotations

import random

from shoal.policy.choker import Choker, PeerStats


def leechers(rates: list[float]) -> list[PeerStats]:
    return [PeerStats(f"p{i}", True, download_rate=r, downloaded=1) for i, r in enumerate(rates)]


def test_tit_for_tat_unchokes_best_uploaders_plus_one_optimistic() -> None:
    c = Choker(slots=4)
    rng = random.Random(1)
    d = c.decide(leechers([10, 50, 5, 40, 30, 1, 0]), 0.0, rng, seeding=False)
    regular = d.unchoke - {d.optimistic}
    assert regular == {"p1", "p3", "p4"}
    assert d.optimistic is not None and d.optimistic not in regular
    assert len(d.unchoke) == 4


def test_not_interested_and_snubbed_are_not_regular() -> None:
    c = Choker(slots=3)
    peers = [
        PeerStats("a", False, download_rate=100),
        PeerStats("b", True, download_rate=90, snubbed=True),
        PeerStats("c", True, download_rate=10),
        PeerStats("d", True, download_rate=5),
    ]
    d = c.decide(peers, 0.0, random.Random(2), seeding=False)
    assert "a" not in d.unchoke
    assert d.unchoke - {d.optimistic} == {"c", "d"}


def test_optimistic_rotates_every_interval() -> None:
    c = Choker(slots=2, optimistic_interval=30.0)
    rng = random.Random(3)
    peers = leechers([100] + [0] * 6)
    first = c.decide(peers, 0.0, rng, seeding=False).optimistic
    assert c.decide(peers, 10.0, rng, seeding=False).optimistic == first
    assert c.decide(peers, 20.0, rng, seeding=False).optimistic == first
    seen = {first}
    for k in range(1, 20):
        opt = c.decide(peers, 30.0 * k, rng, seeding=False).optimistic
        assert opt != "p0"
        seen.add(opt)
    assert len(seen) >= 4  # rotates among the choked peers


def test_seeding_spreads_upload_round_robin() -> None:
    c = Choker(slots=3, seed_slot_time=30.0)
    rng = random.Random(4)
    uploaded = {f"p{i}": 0 for i in range(9)}
    since: dict[str, float | None] = dict.fromkeys(uploaded)
    turns = {p: 0 for p in uploaded}
    for k in range(60):
        now = 10.0 * k
        peers = [
            PeerStats(p, True, upload_rate=1000, uploaded=uploaded[p], unchoked_since=since[p])
            for p in uploaded
        ]
        d = c.decide(peers, now, rng, seeding=True)
        assert len(d.unchoke) == 3
        for p in uploaded:
            if p in d.unchoke:
                uploaded[p] += 10_000
                turns[p] += 1
                since[p] = since[p] if since[p] is not None else now
            else:
                since[p] = None
    assert min(uploaded.values()) > 0
    assert max(uploaded.values()) <= 2 * min(uploaded.values())


def test_seeds_not_unchoked_when_seeding_and_unlimited_slots() -> None:
    c = Choker(slots=0)
    peers = [PeerStats("a", True), PeerStats("b", True, is_seed=True), PeerStats("c", False)]
    assert c.decide(peers, 0.0, random.Random(0), seeding=True).unchoke == {"a"}
    assert c.decide(peers, 0.0, random.Random(0), seeding=False).unchoke == {"a", "b"}


def test_deterministic_with_seed() -> None:
    peers = leechers([1, 1, 1, 1, 1, 1, 1, 1])
    a = Choker(slots=4).decide(peers, 0.0, random.Random(9), seeding=False)
    b = Choker(slots=4).decide(peers, 0.0, random.Random(9), seeding=False)
    assert a == b


def test_fill_gives_free_slots_to_the_peers_the_round_would_favour() -> None:
    c = Choker(slots=3)
    peers = [
        PeerStats("busy", True, download_rate=99, unchoked_since=0.0),  # holds a slot
        PeerStats("slow", True, download_rate=1),
        PeerStats("fast", True, download_rate=50),
        PeerStats("snub", True, download_rate=80, snubbed=True),
        PeerStats("idle", False, download_rate=70),  # not interested: never
    ]
    assert c.fill(peers, random.Random(1), seeding=False) == {"fast", "slow"}  # 2 free; the snubbed one last


def test_fill_while_seeding_favours_fewest_bytes_and_skips_seeds() -> None:
    c = Choker(slots=2)
    peers = [
        PeerStats("got-much", True, uploaded=10_000),
        PeerStats("got-little", True, uploaded=10),
        PeerStats("seed", True, is_seed=True),
        PeerStats("holder", True, unchoked_since=5.0),
    ]
    assert c.fill(peers, random.Random(2), seeding=True) == {"got-little"}


def test_fill_with_no_free_slot_or_unlimited() -> None:
    full = [PeerStats("a", True, unchoked_since=0.0), PeerStats("b", True)]
    assert c_fill(Choker(slots=1), full) == frozenset()
    assert c_fill(Choker(slots=0), full) == {"b"}  # unlimited: every interested peer


def c_fill(c: Choker, peers: list[PeerStats]) -> frozenset[object]:
    return c.fill(peers, random.Random(3), seeding=False)
