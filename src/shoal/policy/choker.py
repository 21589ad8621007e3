"""Who to unchoke: a decision over peer statistics, ``now`` and an injected ``rng`` (sans-IO).

The engine calls :meth:`Choker.decide` every ``choke_interval`` seconds with one :class:`PeerStats` per connected
peer, and unchokes exactly ``decision.unchoke``. Between rounds a slot that comes free (an unchoked peer left or
lost interest) is given at once by :meth:`Choker.fill`, and a peer that becomes interested while a slot is free
is unchoked at once.

- **Leeching** (tit-for-tat, BEP 3): the ``slots - 1`` interested, non-snubbed peers that upload fastest to us
  are unchoked (ties broken by the rng).
- **Seeding** (spread upload fairly): a peer that is unchoked keeps its slot for ``seed_slot_time``; free slots
  go to the interested peers that got the fewest bytes from us so far (round robin by bytes, ties by rng), so
  every peer gets a turn instead of the fastest few taking everything.
- **Optimistic unchoke**: one more interested peer, outside the regular set, chosen by the rng and kept for
  ``optimistic_interval`` (30 s) before rotating; newly connected peers (no bytes exchanged) get 3x weight, as
  the spec suggests, so they can earn a regular slot. While seeding the optimistic turn goes to the peer that
  got the fewest bytes so far.

``slots`` is the total (regular + optimistic); ``slots <= 0`` means unlimited: every interested peer.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence

from shoal.records import record


@record
class PeerStats:
    """What the choker needs to know about one connected peer."""

    peer: Hashable
    interested: bool  # the peer wants data from us
    download_rate: float = 0.0  # bytes/s it sends us
    upload_rate: float = 0.0  # bytes/s we send it
    uploaded: int = 0  # bytes we sent it in total
    downloaded: int = 0  # bytes it sent us in total
    unchoked_since: float | None = None  # None: currently choked by us
    snubbed: bool = False
    is_seed: bool = False  # it has every piece


@record
class ChokeDecision:
    unchoke: frozenset[Hashable]
    optimistic: Hashable | None


class Choker:
    """Holds the optimistic-unchoke rotation; everything else is recomputed from the stats each time."""

    def __init__(
        self, *, slots: int, optimistic_interval: float = 30.0, seed_slot_time: float = 30.0
    ) -> None:
        self.slots = slots
        self.optimistic_interval = optimistic_interval
        self.seed_slot_time = seed_slot_time
        self.optimistic: Hashable | None = None
        self.optimistic_since = 0.0

    def decide(
        self, peers: Sequence[PeerStats], now: float, rng: random.Random, *, seeding: bool
    ) -> ChokeDecision:
        cands = [p for p in peers if p.interested and not (p.is_seed and seeding)]
        if self.slots <= 0:
            self.optimistic = None
            return ChokeDecision(frozenset(p.peer for p in cands), None)
        regular_slots = self.slots - 1 if self.slots > 1 else self.slots
        if seeding:
            regular = self._seeding(cands, now, rng, regular_slots)
        else:
            regular = self._leeching(cands, rng, regular_slots)
        chosen = {p.peer for p in regular}
        optimistic = self._optimistic(cands, chosen, now, rng, seeding) if self.slots > 1 else None
        if optimistic is not None:
            chosen.add(optimistic)
        return ChokeDecision(frozenset(chosen), optimistic)

    def fill(self, peers: Sequence[PeerStats], rng: random.Random, *, seeding: bool) -> frozenset[Hashable]:
        """Between rounds, when a slot came free (an unchoked peer left or lost interest): the choked, interested
        peers to unchoke into the free slots, in the order the next round would favour them (seeding: fewest
        bytes from us first; leeching: fastest to us, snubbed last). Nobody is choked; the round still decides."""
        cands = [
            p for p in peers if p.interested and p.unchoked_since is None and not (p.is_seed and seeding)
        ]
        if self.slots <= 0:
            return frozenset(p.peer for p in cands)
        free = self.slots - sum(1 for p in peers if p.unchoked_since is not None)
        if free <= 0 or not cands:
            return frozenset()
        order: list[tuple[float, float, float, int]] = [
            (p.uploaded, 0.0, rng.random(), i) if seeding else (p.snubbed, -p.download_rate, rng.random(), i)
            for i, p in enumerate(cands)
        ]
        order.sort()
        return frozenset(cands[k[-1]].peer for k in order[:free])

    @staticmethod
    def _leeching(cands: list[PeerStats], rng: random.Random, n: int) -> list[PeerStats]:
        keyed = [(-p.download_rate, p.snubbed, rng.random(), i) for i, p in enumerate(cands)]
        keyed.sort()
        return [cands[i] for *_, i in keyed if not cands[i].snubbed][:n]

    def _seeding(self, cands: list[PeerStats], now: float, rng: random.Random, n: int) -> list[PeerStats]:
        keep = [
            p for p in cands if p.unchoked_since is not None and now - p.unchoked_since < self.seed_slot_time
        ]
        keep.sort(key=lambda p: p.unchoked_since or 0.0)
        keep = keep[:n]
        kept = {p.peer for p in keep}
        rest = [p for p in cands if p.peer not in kept]
        keyed = sorted((p.uploaded, rng.random(), i) for i, p in enumerate(rest))
        return keep + [rest[i] for *_, i in keyed[: n - len(keep)]]

    def _optimistic(
        self, cands: list[PeerStats], chosen: set[Hashable], now: float, rng: random.Random, seeding: bool
    ) -> Hashable | None:
        others = [p for p in cands if p.peer not in chosen]
        current = self.optimistic
        if (
            current is not None
            and now - self.optimistic_since < self.optimistic_interval
            and any(p.peer == current for p in others)
        ):
            return current
        pool = [p for p in others if p.peer != current] or others
        if not pool:
            self.optimistic = None
            return None
        if seeding:  # the turn goes to whoever got least so far
            pick = min(pool, key=lambda p: (p.uploaded, rng.random()))
        else:
            weights = [3.0 if p.uploaded == 0 and p.downloaded == 0 else 1.0 for p in pool]
            pick = rng.choices(pool, weights=weights, k=1)[0]
        self.optimistic = pick.peer
        self.optimistic_since = now
        return pick.peer
