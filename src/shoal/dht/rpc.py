"""The transaction table: outstanding queries keyed by transaction id, with deadlines.

A response is matched by (transaction id, source address), so a node cannot answer for another. Transaction
ids are 2 random bytes from the injected rng, unique among the outstanding ones. The table is bounded by
``max_pending``; a full table refuses new queries (the caller drops them) rather than grow.
"""

from __future__ import annotations

import heapq
import random

from shoal.records import record


@record(frozen=False)
class Pending:
    tid: bytes
    addr: tuple[str, int]
    method: str
    sent_at: float
    deadline: float
    node_id: bytes | None = None  # id we expect, when known
    lookup_id: int | None = None  # the lookup this query belongs to
    hop: int = 0


class Transactions:
    def __init__(self, rng: random.Random, *, timeout: float = 5.0, max_pending: int = 1000) -> None:
        self._rng = rng
        self.timeout = timeout
        self.max_pending = max_pending
        self._pending: dict[bytes, Pending] = {}
        self._deadlines: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def full(self) -> bool:
        return len(self._pending) >= self.max_pending

    def start(
        self,
        addr: tuple[str, int],
        method: str,
        now: float,
        *,
        node_id: bytes | None = None,
        lookup_id: int | None = None,
        hop: int = 0,
    ) -> Pending | None:
        if self.full():
            return None
        while True:
            tid = self._rng.getrandbits(16).to_bytes(2, "big")
            if tid not in self._pending:
                break
        pending = Pending(tid, addr, method, now, now + self.timeout, node_id, lookup_id, hop)
        self._pending[tid] = pending
        heapq.heappush(self._deadlines, (pending.deadline, tid))
        return pending

    def match(self, tid: bytes, addr: tuple[str, int]) -> Pending | None:
        pending = self._pending.get(tid)
        if pending is None or pending.addr != addr:
            return None
        del self._pending[tid]
        return pending

    def expire(self, now: float) -> list[Pending]:
        expired: list[Pending] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, tid = heapq.heappop(self._deadlines)
            pending = self._pending.get(tid)
            if pending is not None and pending.deadline <= now:
                del self._pending[tid]
                expired.append(pending)
        return expired

    def next_deadline(self) -> float | None:
        while self._deadlines and self._deadlines[0][1] not in self._pending:
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None
