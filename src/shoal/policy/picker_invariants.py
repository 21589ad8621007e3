"""Consistency checks of a :class:`~shoal.policy.picker.PiecePicker`'s state, for tests and debugging (sans-IO).

Every partial piece's counts agree with its block states, the free set and the per-peer request index agree with
the requesters, and no availability is negative. O(pieces + blocks of partial pieces): never on a hot path.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from shoal.policy.blocks import FREE, RECEIVED, REQUESTED

if TYPE_CHECKING:
    from shoal.policy.picker import PiecePicker


def invariant_errors(p: PiecePicker) -> list[str]:
    """Internal consistency problems (empty when healthy); for tests and debugging, O(pieces)."""
    errs: list[str] = []
    for piece, part in p._partial.items():
        free = [b for b in range(part.nblocks) if part.state[b] == FREE]
        if len(free) != part.nfree:
            errs.append(f"piece {piece}: nfree {part.nfree} but {len(free)} free blocks")
        if free and free[0] < part.cursor:
            errs.append(f"piece {piece}: free block {free[0]} below cursor {part.cursor}")
        if (part.nfree > 0) != (piece in p._free_parts):
            errs.append(f"piece {piece}: free-set membership wrong")
        received = sum(1 for st in part.state if st >= RECEIVED)
        if received != part.nreceived:
            errs.append(f"piece {piece}: nreceived {part.nreceived} but {received}")
        for b in range(part.nblocks):
            reqs = part.requesters[b]
            if (part.state[b] == REQUESTED) != bool(reqs):
                errs.append(f"piece {piece} block {b}: state {part.state[b]} with requesters {reqs}")
            if len(set(reqs)) != len(reqs):
                errs.append(f"piece {piece} block {b}: a requester twice in {reqs}")
    counted: dict[Hashable, dict[int, int]] = {}
    for piece, part in p._partial.items():
        for reqs in part.requesters:
            for peer in reqs:
                per = counted.setdefault(peer, {})
                per[piece] = per.get(piece, 0) + 1
    mine = {peer: counts for peer, counts in p._mine.items() if counts}
    if mine != counted:
        errs.append(f"request index {mine} differs from the requesters {counted}")
    if not p._free_parts <= set(p._partial):
        errs.append("free set holds pieces that are not partial")
    for i in range(p.num_pieces):
        if p.availability(i) < 0:
            errs.append(f"piece {i}: availability {p.availability(i)}")
    return errs
