"""Which blocks to request from one peer, and when a request has gone stale (sans-IO, ``now`` passed in).

Kept apart from the picker (state) as policy: the picker says *which* blocks are free; this module decides *how
many* to keep in flight to a peer and what to do about slow ones.

- :func:`pipeline_depth`: requests to keep outstanding = ``rate * request_queue_time / block_size``, clamped to
  ``[min_outstanding_requests, max_outstanding_requests]`` and to the peer's ``reqq`` (BEP 10). A snubbed peer
  gets 1.
- :class:`RequestTracker` (one per peer): when each request was sent, the last time a block arrived;
  ``timed_out(now)`` returns requests older than ``request_timeout`` (abort them in the picker so others can
  take them, and cancel them), ``snubbed(now)`` is true when requests are outstanding and nothing arrived for
  ``snub_timeout``. Its ledger (request -> time sent) is its own, or one kept by somebody else: the engine gives
  it the wire connection's (:attr:`shoal.wire.connection.PeerConnection.request_ledger`), which enters each
  request it encodes and drops each that is answered, rejected, cancelled or choked away, so the engine tells the
  tracker only the times (:meth:`~RequestTracker.requesting`, :meth:`~RequestTracker.block_arrived`): one
  ledger, not two kept in step block by block.
- :func:`plan_requests`: the whole step: given the picker, peer, tracker and the peer's state, pick and record
  new requests. While the peer chokes us only its allowed-fast pieces (BEP 6) are asked for.

Typical engine use on each block arrival / unchoke / timer tick::

    for b in tracker.timed_out(now): picker.abort(peer, b); tracker.cancelled(b)   # then send a cancel
    new = plan_requests(picker, peer, tracker, rate=down_rate, now=now, settings=s,
                        peer_choking=choked, allowed_fast=fast_set, peer_reqq=reqq)
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, MutableMapping

from shoal.config import Settings
from shoal.policy.picker import PiecePicker
from shoal.types import BLOCK_SIZE, BlockRef


def pipeline_depth(
    rate: float,
    *,
    request_queue_time: float,
    min_requests: int,
    max_requests: int,
    block_size: int = BLOCK_SIZE,
    peer_reqq: int | None = None,
    snubbed: bool = False,
) -> int:
    """How many requests to keep outstanding to a peer downloading to us at ``rate`` bytes/s."""
    if snubbed:
        return 1
    depth = int(rate * request_queue_time / block_size)
    depth = max(min_requests, min(max_requests, depth))
    if peer_reqq is not None and peer_reqq > 0:
        depth = min(depth, peer_reqq)
    return max(1, depth)


Ledger = MutableMapping[tuple[int, int, int], float]
"""Outstanding requests ``(piece, offset, length)`` -> the time each was sent."""


class RequestTracker:
    """Outstanding requests to one peer, with their send times.

    ``ledger``: the requests and their times, kept by the caller (the wire connection's in the engine); the
    tracker then only reads it, and is told the times by :meth:`requesting` and :meth:`block_arrived`. Without
    one it keeps its own, entered by :meth:`sent` / :meth:`sent_many` and cleared by :meth:`received`,
    :meth:`received_blocks`, :meth:`cancelled` and :meth:`clear` (the policy simulation and the tests)."""

    __slots__ = ("_sent", "last_block_at", "request_timeout", "snub_timeout")

    def __init__(
        self, *, request_timeout: float, snub_timeout: float, now: float = 0.0, ledger: Ledger | None = None
    ) -> None:
        self.request_timeout = request_timeout
        self.snub_timeout = snub_timeout
        self._sent: Ledger = {} if ledger is None else ledger
        self.last_block_at = now

    def __len__(self) -> int:
        return len(self._sent)

    def __contains__(self, block: object) -> bool:
        return block in self._sent

    def outstanding(self) -> list[BlockRef]:
        return [BlockRef._make(key) for key in self._sent]

    def requesting(self, now: float) -> None:
        """Requests are about to be sent at ``now``: with none outstanding, the snub clock starts."""
        if not self._sent:
            self.last_block_at = max(self.last_block_at, now)

    def block_arrived(self, now: float) -> None:
        """A block we asked for arrived at ``now`` (the snub clock starts again)."""
        self.last_block_at = now

    def sent(self, block: BlockRef, now: float) -> None:
        self.requesting(now)
        self._sent[block] = now

    def sent_many(self, blocks: Iterable[BlockRef], now: float) -> None:
        """:meth:`sent` for a batch of requests made at ``now``."""
        self.requesting(now)
        self._sent.update(dict.fromkeys(blocks, now))

    def received_blocks(self, blocks: Iterable[tuple[int, int, int, int]], now: float) -> None:
        """Record arrivals given as ``(piece, offset, start, end)`` (a wire ``BlocksReceived`` batch; the length
        is ``end - start``); unknown ones are ignored."""
        self.block_arrived(now)
        pop = self._sent.pop
        for piece, offset, start, end in blocks:
            pop((piece, offset, end - start), None)

    def received(self, block: BlockRef, now: float) -> bool:
        """Record an arrival; False if we had not requested it (unsolicited, or already timed out)."""
        self.last_block_at = now
        return self._sent.pop(block, None) is not None

    def cancelled(self, block: BlockRef) -> None:
        self._sent.pop(block, None)

    def clear(self) -> list[BlockRef]:
        """Forget everything (peer choked us without the fast extension, or left); returns what was pending."""
        out = self.outstanding()
        self._sent.clear()
        return out

    def timed_out(self, now: float) -> list[BlockRef]:
        """Requests older than ``request_timeout``, still in the ledger: the caller cancels each (:meth:`cancelled`,
        or with a shared ledger its keeper, which sends the cancel)."""
        limit = now - self.request_timeout
        return [BlockRef._make(key) for key, t in self._sent.items() if t <= limit]

    def snubbed(self, now: float) -> bool:
        return bool(self._sent) and now - self.last_block_at >= self.snub_timeout

    def next_deadline(self) -> float | None:
        """When the oldest request times out (for the engine's single timer)."""
        if not self._sent:
            return None
        return min(self._sent.values()) + self.request_timeout


def plan_requests(
    picker: PiecePicker,
    peer: Hashable,
    tracker: RequestTracker,
    *,
    rate: float,
    now: float,
    settings: Settings,
    peer_choking: bool = False,
    allowed_fast: Collection[int] = (),
    peer_reqq: int | None = None,
) -> list[BlockRef]:
    """Pick new blocks to fill the peer's pipeline and record them as sent at ``now``."""
    if peer_choking and not allowed_fast:
        return []
    depth = pipeline_depth(
        rate,
        request_queue_time=settings.request_queue_time,
        min_requests=settings.min_outstanding_requests,
        max_requests=settings.max_outstanding_requests,
        block_size=picker.block_size,
        peer_reqq=peer_reqq,
        snubbed=tracker.snubbed(now),
    )
    want = depth - len(tracker)
    if want <= 0:
        return []
    blocks = picker.pick(peer, want, only=allowed_fast if peer_choking else None)
    for b in blocks:
        tracker.sent(b, now)
    return blocks
