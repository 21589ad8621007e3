"""PiecePicker: which blocks to ask for next (sans-IO: no clock, randomness from an injected ``rng``).

Theory of operation
-------------------
The picker knows, per piece: whether we have it, its priority (0 = don't download), and its availability (how
many connected peers have it). Peers are opaque hashable keys. Availability is tracked exactly from what each
peer said (bitfield / have / have_all / have_none / dont_have / leaving) by
:class:`shoal.policy.availability.Availability`, so contradictory messages can never drive a count below zero
(reliability case 17); seeds are counted once, not per piece.

Pieces we may start are kept in buckets keyed by (priority desc, availability asc); ``pick`` walks the buckets
in that order starting each bucket at a random position (rarest first, seeded tie-break). Buckets are rebuilt
lazily (O(pieces)) after bulk changes such as a bitfield; a single ``have`` moves one piece in O(1). Picking is
O(pieces being downloaded + buckets scanned until a piece the peer has), which for a seed is O(1).

A started piece is *partial*: each block is FREE, REQUESTED, RECEIVED or WRITTEN. Order of preference when
picking for a peer:

1. partial pieces this peer is already downloading (whole pieces from one peer when possible);
2. partial pieces with free blocks that nobody is working on (finish what was started), fullest first;
3. a new piece, rarest first (all its blocks go to this peer, up to ``count``);
4. free blocks of partial pieces other peers are working on;
5. end-game: only when no peer-servable free block is left anywhere, blocks already requested from other
   peers (fewest requesters first, at most ``endgame_max_requesters`` per block). Duplicates happen only here;
   when a block arrives, :meth:`on_block_received` returns the other peers to send ``cancel`` to.

Blocks inside pad files (BEP 47) start RECEIVED and are never requested; a piece made only of pad is had from
the start. :meth:`block_senders` lists which peer sent each block of a piece so the engine can blame peers
after a hash failure (smart ban); :meth:`on_piece_failed` then resets the piece.

API (names are stable)::

    p = PiecePicker.from_layout(layout, rng=random.Random(seed), priorities=layout.piece_priorities(file_prios))
    p.peer_bitfield(peer, bits)  p.peer_have(peer, i)  p.peer_have_all(peer)  p.peer_have_none(peer)
    p.peer_dont_have(peer, i)    p.peer_left(peer)     p.peer_has(peer, i)    p.is_interesting(peer)
    p.pick(peer, count, only=None) -> list[BlockRef]        # marks them REQUESTED by peer
    p.abort(peer, block)                                     # cancelled / rejected / timed out
    p.on_block_received(peer, block) -> Received             # accepted?, cancel these peers, piece complete?
    p.on_block_written(block)
    p.on_piece_passed(i)  p.on_piece_failed(i)  p.block_senders(i)
    p.set_have(i)  p.have(i)  p.num_have  p.is_finished  p.is_seed  p.bitfield()
    p.set_priority(i, prio)  p.set_priorities(list)  p.priority(i)  p.availability(i)  p.in_endgame()
"""

from __future__ import annotations

import random
from collections.abc import Collection, Hashable, Iterable, Sequence
from typing import Protocol

from shoal.policy import picking
from shoal.policy.availability import Availability
from shoal.policy.bitfield import Bitfield
from shoal.policy.blocks import (
    ACCEPTED,
    COMPLETED,
    FREE,
    RECEIVED,
    REFUSED,
    REQUESTED,
    WRITTEN,
    PartialPiece,
    Received,
)
from shoal.policy.piece_order import MAX_PRIORITY, PieceOrder, order_key
from shoal.types import BLOCK_SIZE, BlockRef

EXTENT_BYTES = 4 * 1024 * 1024  # a run of new pieces stays inside one aligned extent of this size


class _LayoutLike(Protocol):
    num_pieces: int
    piece_length: int
    total_length: int
    block_size: int

    def pad_blocks(self) -> list[tuple[int, int]]: ...


class PiecePicker:
    """Availability, priorities and block state of one torrent. See the module docstring."""

    def __init__(
        self,
        num_pieces: int,
        piece_length: int,
        total_length: int,
        *,
        rng: random.Random,
        block_size: int = BLOCK_SIZE,
        pad_blocks: Iterable[tuple[int, int]] = (),
        priorities: Sequence[int] | None = None,
        endgame_max_requesters: int = 2,
    ) -> None:
        if num_pieces < 0 or piece_length <= 0 or total_length < 0:
            raise ValueError("bad picker geometry")
        if num_pieces != (total_length + piece_length - 1) // piece_length:
            raise ValueError(f"{num_pieces} pieces do not fit total length {total_length}")
        self.num_pieces = num_pieces
        self.piece_length = piece_length
        self.total_length = total_length
        self.block_size = block_size
        self.endgame_max_requesters = endgame_max_requesters
        self._rng = rng
        # new pieces follow the last one started while they stay in its extent and in its rarity bucket, so that
        # neighbours finish together and go to disk as one write (picking.pick_new, storage/write_runs.py)
        self._extent = max(1, EXTENT_BYTES // piece_length)
        self._last_new = -1
        self._nbytes = (num_pieces + 7) // 8
        self._have = bytearray(num_pieces)
        self._have_bits = bytearray(self._nbytes)
        self._num_have = 0
        self._prio = list(priorities) if priorities is not None else [1] * num_pieces
        if len(self._prio) != num_pieces:
            raise ValueError(f"{len(self._prio)} priorities for {num_pieces} pieces")
        self._av = Availability(num_pieces, on_change=self._moved, on_bulk=self._mark_dirty)
        # peer -> partial piece -> how many of its blocks are requested from that peer (the requesters are the truth)
        self._mine: dict[Hashable, dict[int, int]] = {}
        self._free_parts: set[int] = set()  # partial pieces with at least one FREE block
        self._partial: dict[int, PartialPiece] = {}
        self._pad: dict[int, set[int]] = {}
        for piece, block in pad_blocks:
            self._pad.setdefault(piece, set()).add(block)
        # buckets
        self._order = PieceOrder(num_pieces)
        self._wanted_left = sum(1 for p in self._prio if p > 0)
        self._need = bytearray(self._nbytes)  # bit set: not had and priority > 0
        for i, p in enumerate(self._prio):
            if p > 0:
                self._need[i >> 3] |= 0x80 >> (i & 7)
        for piece, blocks in self._pad.items():
            if len(blocks) >= self.blocks_in_piece(piece):
                self.set_have(piece)

    @classmethod
    def from_layout(
        cls,
        layout: _LayoutLike,
        *,
        rng: random.Random,
        priorities: Sequence[int] | None = None,
        endgame_max_requesters: int = 2,
    ) -> PiecePicker:
        """Build from a :class:`shoal.storage.layout.Layout` (pad blocks included)."""
        return cls(
            layout.num_pieces,
            layout.piece_length,
            layout.total_length,
            rng=rng,
            block_size=layout.block_size,
            pad_blocks=layout.pad_blocks(),
            priorities=priorities,
            endgame_max_requesters=endgame_max_requesters,
        )

    # --- geometry ------------------------------------------------------------------------------------------

    def piece_size(self, piece: int) -> int:
        if piece == self.num_pieces - 1:
            return self.total_length - piece * self.piece_length
        return self.piece_length

    def blocks_in_piece(self, piece: int) -> int:
        return (self.piece_size(piece) + self.block_size - 1) // self.block_size

    def _ref(self, piece: int, block: int) -> BlockRef:
        start = block * self.block_size
        return BlockRef(piece, start, min(self.block_size, self.piece_size(piece) - start))

    # --- our pieces ----------------------------------------------------------------------------------------

    def have(self, piece: int) -> bool:
        return bool(self._have[piece])

    @property
    def num_have(self) -> int:
        return self._num_have

    @property
    def is_seed(self) -> bool:
        return self._num_have == self.num_pieces

    @property
    def is_finished(self) -> bool:
        """Every wanted piece (priority > 0) is had."""
        return self._wanted_left == 0

    def bitfield(self) -> bytes:
        """Our pieces as a wire bitfield (MSB first, spare bits zero)."""
        return bytes(self._have_bits)

    def have_bitfield(self) -> Bitfield:
        """Our pieces as a :class:`Bitfield` (e.g. for ResumeStore.save)."""
        return Bitfield.from_bytes(self.bitfield(), self.num_pieces)

    def set_have(self, piece: int) -> None:
        """Mark a piece as had (verified), e.g. from resume data."""
        if self._have[piece]:
            return
        self._bucket_remove(piece)
        self._drop_partial(piece)
        self._have[piece] = 1
        self._have_bits[piece >> 3] |= 0x80 >> (piece & 7)
        self._num_have += 1
        self._update_need(piece)
        if self._prio[piece] > 0:
            self._wanted_left -= 1

    def _update_need(self, piece: int) -> None:
        bit = 0x80 >> (piece & 7)
        if not self._have[piece] and self._prio[piece] > 0:
            self._need[piece >> 3] |= bit
        else:
            self._need[piece >> 3] &= ~bit & 0xFF

    def downloading_pieces(self) -> list[int]:
        return list(self._partial)

    def block_state(self, piece: int, block: int) -> int:
        if self._have[piece]:
            return WRITTEN
        part = self._partial.get(piece)
        if part is None:
            return RECEIVED if block in self._pad.get(piece, ()) else FREE
        return part.state[block]

    # --- priorities ------------------------------------------------------------------------------------------

    def priority(self, piece: int) -> int:
        return self._prio[piece]

    def set_priority(self, piece: int, prio: int) -> None:
        if not 0 <= prio <= MAX_PRIORITY:
            raise ValueError(f"priority {prio} outside 0..{MAX_PRIORITY}")
        old = self._prio[piece]
        if old == prio:
            return
        self._bucket_remove(piece)
        self._prio[piece] = prio
        if not self._have[piece]:
            self._wanted_left += (prio > 0) - (old > 0)
        self._update_need(piece)
        self._bucket_add(piece)

    def set_priorities(self, priorities: Sequence[int]) -> None:
        if len(priorities) != self.num_pieces:
            raise ValueError(f"{len(priorities)} priorities for {self.num_pieces} pieces")
        for p in priorities:
            if not 0 <= p <= MAX_PRIORITY:
                raise ValueError(f"priority {p} outside 0..{MAX_PRIORITY}")
        for i, p in enumerate(priorities):
            if not self._have[i]:
                self._wanted_left += (p > 0) - (self._prio[i] > 0)
        self._prio = list(priorities)
        for i in range(self.num_pieces):
            self._update_need(i)
        self._order.dirty = True

    # --- availability ----------------------------------------------------------------------------------------

    def availability(self, piece: int) -> int:
        return self._av.counts[piece] + self._av.seeds

    def _moved(self, piece: int) -> None:
        if self._order.key_of(piece) >= 0:
            self._bucket_remove(piece)
            self._bucket_add(piece)

    def _mark_dirty(self) -> None:
        self._order.dirty = True

    def peer_bitfield(self, peer: Hashable, bits: bytes | bytearray | Bitfield) -> None:
        """A peer's bitfield (wire bytes or a :class:`Bitfield`). Replaces anything it said before."""
        self._av.bitfield(peer, bits)

    def peer_have(self, peer: Hashable, piece: int) -> None:
        self._av.have(peer, piece)

    def peer_dont_have(self, peer: Hashable, piece: int) -> None:
        self._av.dont_have(peer, piece)

    def peer_have_all(self, peer: Hashable) -> None:
        self._av.have_all(peer)

    def peer_have_none(self, peer: Hashable) -> None:
        self._av.have_none(peer)

    def peer_left(self, peer: Hashable) -> None:
        """Forget a peer: its availability and all its outstanding requests."""
        self._av.remove(peer)
        for piece in list(self._mine.get(peer, ())):
            part = self._partial.get(piece)
            for b, reqs in enumerate(part.requesters if part is not None else ()):
                if peer in reqs:
                    self._release(peer, piece, b)
        self._mine.pop(peer, None)

    def peer_has(self, peer: Hashable, piece: int) -> bool:
        ph = self._av.get(peer)
        return ph is not None and ph.has(piece)

    def peer_count(self, peer: Hashable) -> int:
        ph = self._av.get(peer)
        return 0 if ph is None else ph.count

    def is_interesting(self, peer: Hashable) -> bool:
        """Does the peer have any piece we still want?"""
        ph = self._av.get(peer)
        if ph is None or self._wanted_left == 0:
            return False
        if ph.all:
            return True
        return bool(int.from_bytes(ph.bits, "big") & int.from_bytes(self._need, "big"))

    # --- buckets -------------------------------------------------------------------------------------------

    def _pickable(self, piece: int) -> bool:
        return not self._have[piece] and self._prio[piece] > 0 and piece not in self._partial

    def _key(self, piece: int) -> int:
        return order_key(self._prio[piece], self._av.counts[piece])

    def _bucket_add(self, piece: int) -> None:
        if not self._order.dirty and self._pickable(piece):
            self._order.add(piece, self._key(piece))

    def _bucket_remove(self, piece: int) -> None:
        self._order.remove(piece)

    def _rebuild(self) -> None:
        have, prio, avail, partial = self._have, self._prio, self._av.counts, self._partial
        self._order.rebuild(
            (i, order_key(prio[i], avail[i]))
            for i in range(self.num_pieces)
            if not have[i] and prio[i] > 0 and i not in partial
        )

    # --- picking -------------------------------------------------------------------------------------------

    def _mine_add(self, peer: Hashable, piece: int, n: int = 1) -> None:
        counts = self._mine.get(peer)
        if counts is None:
            counts = self._mine[peer] = {}
        counts[piece] = counts.get(piece, 0) + n

    def _mine_sub(self, peer: Hashable, piece: int, n: int = 1) -> None:
        counts = self._mine.get(peer)
        if counts is not None:
            left = counts.get(piece, 0) - n
            if left > 0:
                counts[piece] = left
            else:
                counts.pop(piece, None)

    def _sync_free(self, piece: int, part: PartialPiece) -> None:
        if part.nfree > 0:
            self._free_parts.add(piece)
        else:
            self._free_parts.discard(piece)

    def _start(self, piece: int) -> PartialPiece:
        self._bucket_remove(piece)
        part = PartialPiece(self.blocks_in_piece(piece))
        for b in self._pad.get(piece, ()):
            part.state[b] = RECEIVED
            part.nfree -= 1
            part.nreceived += 1
        self._partial[piece] = part
        self._sync_free(piece, part)
        return part

    def _drop_partial(self, piece: int) -> None:
        part = self._partial.pop(piece, None)
        if part is None:
            return
        self._free_parts.discard(piece)
        if not any(part.requesters):  # a piece that passed: every block's requesters went when it arrived
            return
        for peer in {p for reqs in part.requesters for p in reqs}:
            counts = self._mine.get(peer)
            if counts is not None:
                counts.pop(piece, None)

    def pick(self, peer: Hashable, count: int, *, only: Collection[int] | None = None) -> list[BlockRef]:
        """Up to ``count`` blocks to request from ``peer``, marked REQUESTED by it (the order of preference is in
        the module docstring; the code in :mod:`shoal.policy.picking`).

        ``only`` restricts the choice to those pieces (allowed-fast pieces while the peer chokes us).
        """
        return picking.pick(self, peer, count, only)

    def in_endgame(self) -> bool:
        return bool(self._partial) and picking.endgame(self)

    def _release(self, peer: Hashable, piece: int, block: int) -> None:
        part = self._partial.get(piece)
        if part is None:
            return
        reqs = part.requesters[block]
        if peer not in reqs:
            return
        reqs = part.requesters[block] = tuple(p for p in reqs if p != peer)
        self._mine_sub(peer, piece)
        if not reqs and part.state[block] == REQUESTED:
            part.state[block] = FREE
            part.nfree += 1
            part.cursor = min(part.cursor, block)
            self._free_parts.add(piece)

    def abort(self, peer: Hashable, block: BlockRef) -> None:
        """The request of ``block`` to ``peer`` is gone (cancelled, rejected, timed out, choked)."""
        if block.offset % self.block_size == 0:
            self._release(peer, block.piece, block.offset // self.block_size)

    def requested_from(self, peer: Hashable) -> list[BlockRef]:
        out = []
        for piece in sorted(self._mine.get(peer, ())):
            out += [
                self._ref(piece, b) for b, reqs in enumerate(self._partial[piece].requesters) if peer in reqs
            ]
        return out

    def on_block_received(self, peer: Hashable, block: BlockRef) -> Received:
        """A block arrived from ``peer``. The caller checked that offset and length are valid."""
        return self.received(peer, block.piece, block.offset)

    def received(self, peer: Hashable, piece: int, offset: int) -> Received:
        """:meth:`on_block_received` without a :class:`BlockRef`.

        Returns shared constants unless other peers must be sent a cancel (end-game)."""
        return self.received_blocks(peer, [(piece, offset, 0, 0)])[0]

    def received_blocks(self, peer: Hashable, blocks: Iterable[tuple[int, int, int, int]]) -> list[Received]:
        """:meth:`received` for each ``(piece, offset, start, end)`` of a wire batch, in order: the engine's
        per-block path, one call per read (``start`` and ``end`` are not looked at).

        The entries are shared constants (:data:`REFUSED`, :data:`ACCEPTED`, :data:`COMPLETED`) unless other
        peers must be sent a cancel (end-game)."""
        results: list[Received] = []
        append = results.append
        partial = self._partial
        mine_sub = self._mine_sub
        bs = self.block_size
        current = -1
        part: PartialPiece | None = None
        own = 0  # blocks of ``current`` asked of ``peer`` alone: its count in _mine drops once per piece
        for piece, offset, _, _ in blocks:
            if piece != current or part is None:
                if own:
                    mine_sub(peer, current, own)
                    own = 0
                current = piece
                part = partial.get(piece)
                if part is None:
                    if not 0 <= piece < self.num_pieces or self._have[piece] or self._prio[piece] <= 0:
                        append(REFUSED)
                        continue
                    part = self._start(piece)
            b, rest = divmod(offset, bs)
            state = part.state
            if rest or not 0 <= b < part.nblocks or state[b] >= RECEIVED:
                append(REFUSED)  # a duplicate: its requesters were released when the first copy came
                continue
            requesters = part.requesters
            reqs = requesters[b]
            if reqs:
                requesters[b] = ()
                if len(reqs) == 1 and reqs[0] == peer:
                    own += 1
                else:
                    for p in reqs:
                        mine_sub(p, piece)
            else:  # FREE: nobody had asked for it (a late answer to a request we gave up)
                part.nfree -= 1
                self._sync_free(piece, part)
            state[b] = RECEIVED
            part.senders[b] = peer
            n = part.nreceived = part.nreceived + 1
            if reqs and (len(reqs) > 1 or reqs[0] != peer):
                append(Received(True, tuple(p for p in reqs if p != peer), n == part.nblocks))
            else:
                append(COMPLETED if n == part.nblocks else ACCEPTED)
        if own:
            mine_sub(peer, current, own)
        return results

    def on_block_written(self, block: BlockRef) -> None:
        part = self._partial.get(block.piece)
        b = block.offset // self.block_size
        if part is not None and part.state[b] == RECEIVED:
            part.state[b] = WRITTEN

    def is_piece_complete(self, piece: int) -> bool:
        part = self._partial.get(piece)
        return part is not None and part.nreceived == part.nblocks

    def block_senders(self, piece: int) -> list[Hashable | None]:
        """Per block of a partial piece, the peer whose copy we kept (None: pad or not received)."""
        part = self._partial.get(piece)
        return [] if part is None else list(part.senders)

    def invariant_errors(self) -> list[str]:
        """Internal consistency problems (empty when healthy); for tests and debugging, O(pieces)."""
        from shoal.policy.picker_invariants import invariant_errors

        return invariant_errors(self)

    def on_piece_passed(self, piece: int) -> None:
        self.set_have(piece)

    def on_piece_failed(self, piece: int) -> None:
        """The piece failed its hash: forget every block and make it pickable again."""
        if self._have[piece]:
            return
        self._drop_partial(piece)
        self._bucket_add(piece)
