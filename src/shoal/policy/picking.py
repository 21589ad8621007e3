"""How :class:`~shoal.policy.picker.PiecePicker` chooses the blocks to ask a peer for (sans-IO).

The picker keeps the state (availability, priorities, partial pieces, who asked for what); these functions walk it
in the order of preference of :mod:`shoal.policy.picker`'s docstring: the peer's own partial pieces, idle partial
pieces (fullest first), new pieces (rarest first, a random start in each bucket), busy partial pieces, then
end-game duplicates. They are the picker's methods in all but name: one module for the choosing, one for the
bookkeeping.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable
from typing import TYPE_CHECKING

from shoal.policy.availability import PeerHave
from shoal.policy.blocks import FREE, RECEIVED, REQUESTED, REQUESTED_RUN, WRITTEN, PartialPiece
from shoal.policy.piece_order import key_availability
from shoal.types import BlockRef

if TYPE_CHECKING:
    from shoal.policy.picker import PiecePicker

_tuple_new = tuple.__new__


def pick(p: PiecePicker, peer: Hashable, count: int, only: Collection[int] | None = None) -> list[BlockRef]:
    """Up to ``count`` blocks to request from ``peer``, marked REQUESTED by it.

    ``only`` restricts the choice to those pieces (allowed-fast pieces while the peer chokes us).
    """
    out: list[BlockRef] = []
    ph = p._av.get(peer)
    if ph is None or count <= 0 or p._wanted_left == 0:
        return out
    if p._order.dirty:
        p._rebuild()
    prio = p._prio
    allowed = None if only is None else set(only)
    # 1. partial pieces this peer works on that still have free blocks (the smaller set is walked: with small
    # pieces a peer works on a hundred pieces, nearly all fully requested)
    mine = p._mine.get(peer)
    free_parts = p._free_parts
    if not mine or not free_parts:
        own: list[int] = []
    elif len(free_parts) < len(mine):
        own = sorted(piece for piece in free_parts if piece in mine)
    else:
        own = sorted(piece for piece in mine if piece in free_parts)
    for piece in own:
        part = p._partial.get(piece)
        if (
            part is not None
            and part.nfree
            and prio[piece] > 0
            and ph.has(piece)  # it may have said have-none / dont-have since
            and (allowed is None or piece in allowed)
        ):
            count -= take_free(p, peer, piece, part, count, out)
            if count <= 0:
                return out
    # 2. partial pieces with free blocks that nobody works on, fullest first
    idle: list[tuple[int, int, int]] = []
    busy: list[tuple[int, int, int]] = []
    for piece in p._free_parts:
        part = p._partial[piece]
        if prio[piece] <= 0 or not ph.has(piece):
            continue
        if allowed is not None and piece not in allowed:
            continue
        active = part.nblocks - part.nfree - part.nreceived
        entry = (-prio[piece], -part.nreceived, piece)
        (busy if active else idle).append(entry)
    for _, _, piece in sorted(idle):
        count -= take_free(p, peer, piece, p._partial[piece], count, out)
        if count <= 0:
            return out
    # 3. new pieces, rarest first
    while count > 0:
        piece = pick_new(p, ph, allowed)
        if piece < 0:
            break
        count -= take_free(p, peer, piece, p._start(piece), count, out)
    if count <= 0:
        return out
    # 4. free blocks of pieces other peers work on
    for _, _, piece in sorted(busy):
        part = p._partial[piece]
        if part.nfree:
            count -= take_free(p, peer, piece, part, count, out)
            if count <= 0:
                return out
    # 5. end-game
    if not out and endgame(p):
        pick_endgame(p, peer, ph, count, allowed, out)
    return out


def take_free(
    p: PiecePicker, peer: Hashable, piece: int, part: PartialPiece, count: int, out: list[BlockRef]
) -> int:
    """Mark up to ``count`` FREE blocks of ``piece`` REQUESTED by ``peer`` (lowest first), appended to ``out``.

    Works run by run (a run of FREE blocks is found with a few ``find`` calls and marked with slice
    assignments), not block by block."""
    state = part.state
    reqs = part.requesters
    nblocks = part.nblocks
    size = p.piece_size(piece)
    bs = p.block_size
    find = state.find
    new = _tuple_new  # BlockRef(...) without the namedtuple's Python-level __new__ (one frame per block)
    only = (peer,)
    taken = 0
    b = find(FREE, part.cursor)
    while b >= 0 and taken < count:
        e = min(b + count - taken, nblocks)  # the run ends at the first block that is not FREE
        for other in (REQUESTED, RECEIVED, WRITTEN):
            x = find(other, b + 1, e)
            if x >= 0:
                e = x
        n = e - b
        state[b:e] = REQUESTED_RUN[:n] if n <= len(REQUESTED_RUN) else bytes([REQUESTED]) * n
        reqs[b:e] = [only] * n
        out += [new(BlockRef, (piece, start, bs)) for start in range(b * bs, e * bs, bs)]
        if e * bs > size:  # the piece's short last block
            last = out[-1]
            out[-1] = new(BlockRef, (piece, last[1], size - last[1]))
        taken += n
        b = find(FREE, e)
    part.cursor = part.nblocks if b < 0 else b
    if taken:
        part.nfree -= taken
        p._mine_add(peer, piece, taken)
    p._sync_free(piece, part)
    return taken


def pick_new(p: PiecePicker, ph: PeerHave, allowed: set[int] | None) -> int:
    if allowed is not None:
        best = -1
        best_key = 0
        for piece in allowed:
            key = p._order.key_of(piece) if 0 <= piece < p.num_pieces else -1
            if key >= 0 and ph.has(piece) and (best < 0 or key < best_key):
                best, best_key = piece, key
        return best
    rng = p._rng
    order = p._order
    buckets = order.buckets
    last = p._last_new
    follow = last + 1  # the next piece, while it is in the extent of the last one started
    if follow >= p.num_pieces or follow // p._extent != last // p._extent:
        follow = -1
    follow_key = order.key_of(follow) if follow >= 0 else -1
    bits = ph.bits
    for key in order.keys:
        if not ph.all and not key_availability(key):
            continue  # a non-seed peer's pieces have availability >= 1
        bucket = buckets[key]
        if key == follow_key and (ph.all or bits[follow >> 3] & (0x80 >> (follow & 7))):
            p._last_new = follow  # as rare as any the peer has: its neighbour, for one write to disk
            return follow
        n = len(bucket)
        start = rng.randrange(n) if n > 1 else 0
        if ph.all:
            p._last_new = bucket[start]
            return bucket[start]
        for j in range(n):
            piece = bucket[(start + j) % n]
            if bits[piece >> 3] & (0x80 >> (piece & 7)):
                p._last_new = piece
                return piece
    return -1


def endgame(p: PiecePicker) -> bool:
    """True when no free block is left that some peer could serve."""
    if p._order.dirty:
        p._rebuild()
    for key in p._order.keys:
        if key_availability(key) or p._av.seeds:
            return False
    return not any(p._prio[piece] > 0 and p.availability(piece) > 0 for piece in p._free_parts)


def pick_endgame(
    p: PiecePicker, peer: Hashable, ph: PeerHave, count: int, allowed: set[int] | None, out: list[BlockRef]
) -> None:
    cands: list[tuple[int, int, int]] = []
    for piece, part in p._partial.items():
        if p._prio[piece] <= 0 or not ph.has(piece) or (allowed is not None and piece not in allowed):
            continue
        for b in range(part.nblocks):
            reqs = part.requesters[b]
            if (
                part.state[b] == REQUESTED
                and reqs
                and peer not in reqs
                and len(reqs) < p.endgame_max_requesters
            ):
                cands.append((len(reqs), piece, b))
    cands.sort()
    for _, piece, b in cands[:count]:
        part = p._partial[piece]
        part.requesters[b] = (*part.requesters[b], peer)
        p._mine_add(peer, piece)
        out.append(p._ref(piece, b))
