"""Block states of a piece being downloaded, and what the picker says when a block arrives (sans-IO).

A started piece is a :class:`PartialPiece`: one state byte per block (FREE, REQUESTED, RECEIVED, WRITTEN), who it is
requested from and who sent the copy kept. :class:`Received` is :meth:`shoal.policy.picker.PiecePicker.received`'s
answer; the three shared constants are returned wherever no cancels are needed, so the per-block path allocates
nothing.
"""

from __future__ import annotations

from collections.abc import Hashable

from shoal.records import record

FREE = 0
REQUESTED = 1
RECEIVED = 2
WRITTEN = 3


@record
class Received:
    """What :meth:`PiecePicker.on_block_received` decided."""

    accepted: bool  # False: duplicate or unwanted, drop the data
    cancel: tuple[Hashable, ...]  # other peers that had requested this block: send them cancel
    piece_complete: bool  # every block of the piece is now received: hash it


REQUESTED_RUN = bytes([REQUESTED]) * 256
"""A run of REQUESTED states, sliced to mark blocks with one assignment."""
REFUSED = Received(False, (), False)
ACCEPTED = Received(True, (), False)  # accepted, no cancels, the piece is not complete yet
COMPLETED = Received(True, (), True)


class PartialPiece:
    """The blocks of one piece being downloaded: each FREE, REQUESTED, RECEIVED or WRITTEN."""

    __slots__ = ("cursor", "nblocks", "nfree", "nreceived", "requesters", "senders", "state")

    def __init__(self, nblocks: int) -> None:
        self.nblocks = nblocks
        self.state = bytearray(nblocks)
        # the peers a block is requested from: () unless REQUESTED; more than one only in end-game
        self.requesters: list[tuple[Hashable, ...]] = [()] * nblocks
        self.senders: list[Hashable | None] = [None] * nblocks
        self.nfree = nblocks
        self.cursor = 0  # no FREE block below this index
        self.nreceived = 0
