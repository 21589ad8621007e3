"""Availability: exact transitions, callbacks for single and bulk changes."""

from __future__ import annotations

from shoal.policy.availability import Availability


def test_transitions_and_callbacks() -> None:
    changed: list[int] = []
    bulks: list[int] = []
    av = Availability(10, on_change=changed.append, on_bulk=lambda: bulks.append(1))
    av.bitfield("a", b"\x80\x40")  # pieces 0 and 9
    assert [av[i] for i in (0, 1, 9)] == [1, 0, 1] and bulks == [1]
    av.have("a", 0)
    av.have("a", 1)
    assert changed == [1]
    av.have_all("a")
    assert av.seeds == 1 and av.counts == [0] * 10 and [av[i] for i in range(10)] == [1] * 10
    av.dont_have("a", 3)
    assert av.seeds == 0 and av[3] == 0 and av[4] == 1
    av.remove("a")
    av.remove("a")
    assert all(av[i] == 0 for i in range(10)) and av.get("a") is None
