"""``@record`` behaves as ``@dataclass(frozen=True, slots=True)`` (or ``slots=True`` alone) does."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any, ClassVar

import pytest

from shoal.records import record


class Base:
    __slots__ = ()


def _twins(frozen: bool) -> tuple[Any, Any]:
    """The same class, once with @record and once with @dataclass."""

    def body() -> dict[str, Any]:
        return {
            "__module__": __name__,
            "__annotations__": {"kind": "ClassVar[int]", "a": "int", "b": "bytes", "c": "list[int]"},
            "kind": 7,
            "b": b"x",
            "c": dataclasses.field(default_factory=list),
        }

    mine = record(frozen=frozen)(type("Thing", (Base,), body()))
    theirs = dataclasses.dataclass(frozen=frozen, slots=True)(type("Thing", (Base,), body()))
    return mine, theirs


@pytest.mark.parametrize("frozen", [True, False])
def test_a_record_matches_the_dataclass_it_stands_for(frozen: bool) -> None:
    mine, theirs = _twins(frozen)
    for args, kwargs in [
        ((1,), {}),
        ((1, b"y"), {}),
        ((1,), {"c": [2]}),
        ((), {"a": 3, "b": b"z", "c": [4]}),
    ]:
        x, y = mine(*args, **kwargs), theirs(*args, **kwargs)
        assert repr(x) == repr(y)
        assert dataclasses.asdict(x) == dataclasses.asdict(y)
        assert x == mine(*args, **kwargs)
        assert x != mine(99)
    assert (
        [f.name for f in dataclasses.fields(mine)]
        == [f.name for f in dataclasses.fields(theirs)]
        == ["a", "b", "c"]
    )
    assert mine.__match_args__ == theirs.__match_args__ == ("a", "b", "c")
    assert mine.kind == 7
    assert not hasattr(mine(1), "__dict__")
    assert mine(1).c is not mine(1).c  # a fresh list each time
    assert mine(1) != theirs(1)  # different classes never compare equal
    with pytest.raises(TypeError):
        mine()
    with pytest.raises(TypeError):
        mine(1, b"", [], 4)


@record
class Point:  # at module level, so pickle can find it
    x: int
    y: int = 0


def test_a_frozen_record_refuses_assignment_and_hashes_by_value() -> None:
    p = Point(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del p.y  # type: ignore[misc]
    assert hash(p) == hash(Point(1, 2)) == hash((1, 2))  # what a frozen dataclass hashes, too
    assert {p: "here"}[Point(1, 2)] == "here"
    assert dataclasses.replace(p, y=9) == Point(1, 9)
    assert pickle.loads(pickle.dumps(p)) == p
    assert copy.deepcopy(p) == p and copy.copy(p) == p


def test_a_plain_record_is_assignable_and_unhashable() -> None:
    @record(frozen=False)
    class Counter:
        n: int = 0
        seen: list[int] = dataclasses.field(default_factory=list)

        def __post_init__(self) -> None:
            self.n += 1

    c = Counter()
    assert c.n == 1  # __post_init__ ran
    c.n = 5
    assert c == Counter(4)
    with pytest.raises(TypeError):
        hash(c)
    with pytest.raises(AttributeError):
        c.other = 1  # type: ignore[attr-defined]  # slotted


def test_methods_the_class_writes_itself_are_kept() -> None:
    @record
    class Loose:
        a: int
        b: int

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Loose) and self.a == other.a

        def __hash__(self) -> int:
            return self.a

        def __repr__(self) -> str:
            return "loose"

    assert Loose(1, 2) == Loose(1, 3)
    assert hash(Loose(4, 0)) == 4
    assert repr(Loose(1, 2)) == "loose"


def test_what_record_does_not_support_is_refused() -> None:
    with pytest.raises(TypeError, match="kw_only"):

        @record
        class Keywords:
            a: int = dataclasses.field(kw_only=True)

    with pytest.raises(ValueError, match="mutable default"):

        @record
        class Shared:
            a: list[int] = []


class Message:
    __slots__ = ()
    msg_id: ClassVar[int] = -1


@record
class Have(Message):
    msg_id: ClassVar[int] = 4
    piece: int


def test_class_variables_stay_out_of_the_fields_and_matching_works() -> None:
    assert [f.name for f in dataclasses.fields(Have)] == ["piece"]
    assert Have.msg_id == 4
    match Have(3):
        case Have(piece):
            assert piece == 3
        case _:
            pytest.fail("no match")
