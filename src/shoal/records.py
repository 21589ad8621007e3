"""``@record``: a slotted dataclass, made in a quarter of the time ``@dataclass`` takes on Python 3.11.

Python 3.11's :mod:`dataclasses` writes the source of each generated method (``__init__``, ``__repr__``, ``__eq__``,
and for a frozen class ``__hash__``, ``__setattr__``, ``__delattr__``) and compiles it with its own ``exec``;
compiling is nearly all the cost. Shoal has over a hundred such classes, and making them was about 45 % of the CPU
time of importing what ``shoal get`` needs (130-148 ms of 274-349 ms on a 2-core AMD EPYC).

:func:`record` lets :func:`dataclasses.dataclass` do the bookkeeping (``Field`` objects, defaults and factories,
``ClassVar``, ``__slots__``, ``__match_args__``), so :func:`dataclasses.fields`, :func:`dataclasses.replace` and
:func:`dataclasses.asdict` work as before, with its method generation turned off. Then it compiles only
``__init__`` (it runs for every instance, so it stays plain code) and shares the other methods among all
records: ``__eq__`` and ``__hash__`` compare and hash the field values taken by an :func:`operator.attrgetter`,
``__repr__`` prints them as dataclasses does. Making a frozen class of three fields: 1.13 ms with
``@dataclass(frozen=True, slots=True)``, 0.26 ms with ``@record`` (``benchmarks/bench_records.py``).

Frozen is the default, as it is for most of Shoal's values: a frozen record is hashable and raises
:class:`dataclasses.FrozenInstanceError` on any assignment; a plain one (``@record(frozen=False)``) is unhashable,
as with dataclasses. Methods the class body defines itself are kept. Not supported: ``kw_only`` fields (a
``TypeError`` when the class is made), ``InitVar`` pseudo-fields and ordering.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

__all__ = ["record"]

_T = TypeVar("_T")

# the default of a field with a default_factory, in the generated __init__'s signature
_HAS_FACTORY = object()


@overload
def record(cls: type[_T], /) -> type[_T]: ...


@overload
def record(*, frozen: bool = True, slots: bool = True) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(
    cls: type[_T] | None = None, /, *, frozen: bool = True, slots: bool = True
) -> type[_T] | Callable[[type[_T]], type[_T]]:
    """Make ``cls`` a dataclass (``frozen`` and ``slots`` by default), compiling only its ``__init__``."""

    def wrap(c: type[_T]) -> type[_T]:
        return _make(c, frozen=frozen, slots=slots)

    return wrap if cls is None else wrap(cls)


def _make(cls: type[_T], *, frozen: bool, slots: bool) -> type[_T]:
    own = dict(cls.__dict__)  # what the class body wrote itself is kept, as dataclasses keeps it
    documented = bool(own.get("__doc__"))
    if not documented:
        # a placeholder: else dataclasses computes one with inspect.signature, a third of its cost
        cls.__doc__ = cls.__name__
    new = dataclasses.dataclass(init=False, repr=False, eq=False, slots=slots)(cls)
    fields = dataclasses.fields(new)  # type: ignore[arg-type]
    if any(f.kw_only is True for f in fields):
        raise TypeError(f"{new.__qualname__}: @record does not support kw_only fields")
    if not documented:
        new.__doc__ = f"{new.__name__}({', '.join(f.name for f in fields)})"
    compared = [f.name for f in fields if f.compare]
    hashed = [f.name for f in fields if (f.compare if f.hash is None else f.hash)]
    methods: dict[str, Any] = {
        "__init__": _init(new, fields, frozen),
        "__repr__": _repr_of(tuple(f.name for f in fields if f.repr)),
        "__eq__": _eq_of(_key(compared)),
    }
    own_hash = own.get("__hash__", dataclasses.MISSING)
    explicit_hash = not (own_hash is dataclasses.MISSING or (own_hash is None and "__eq__" in own))
    if frozen:
        methods.update(
            __hash__=_hash_of(_key(hashed)), __setattr__=_frozen_setattr, __delattr__=_frozen_delattr
        )
        if slots:  # object's own pickling would restore the slots through the frozen __setattr__
            methods.update(__getstate__=_getstate, __setstate__=_setstate)
    for name, fn in methods.items():
        if name in own and not (name == "__hash__" and not explicit_hash):
            continue
        setattr(new, name, fn)
    if not frozen and not explicit_hash:
        new.__hash__ = None  # type: ignore[assignment]  # mutable and compared by value: unhashable
    return new


def _init(cls: type, fields: tuple[dataclasses.Field[Any], ...], frozen: bool) -> Any:
    """``__init__``, the one method compiled per class: it runs for every instance, so it is plain code."""
    env: dict[str, Any] = {"_setattr": object.__setattr__, "_HAS_FACTORY": _HAS_FACTORY}
    params = ["self"]
    body = []
    for f in fields:
        name = f.name
        has_default = f.default is not dataclasses.MISSING
        has_factory = f.default_factory is not dataclasses.MISSING
        if has_default:
            env[f"_dflt_{name}"] = f.default
        if has_factory:
            env[f"_fact_{name}"] = f.default_factory
        if f.init and has_default:
            params.append(f"{name}=_dflt_{name}")
            value = name
        elif f.init and has_factory:
            params.append(f"{name}=_HAS_FACTORY")
            value = f"_fact_{name}() if {name} is _HAS_FACTORY else {name}"
        elif f.init:
            params.append(name)
            value = name
        elif has_default:
            value = f"_dflt_{name}"
        elif has_factory:
            value = f"_fact_{name}()"
        else:
            continue  # init=False without a default: left unset, as dataclasses does
        body.append(f"    _setattr(self, {name!r}, {value})" if frozen else f"    self.{name} = {value}")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    ns: dict[str, Any] = {}
    src = f"def __init__({', '.join(params)}) -> None:\n" + ("\n".join(body) or "    pass")
    exec(src, env, ns)  # the source is built above from the class's own field names
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _key(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The field values as a tuple, made in C (``attrgetter`` gives a bare value for one name, so wrap it)."""
    if not names:
        return lambda obj: ()
    get = attrgetter(*names)
    if len(names) == 1:
        return lambda obj: (get(obj),)
    return get


def _repr_of(names: tuple[str, ...]) -> Callable[[Any], str]:
    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{self.__class__.__qualname__}({inner})"

    return __repr__


def _eq_of(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any, object], Any]:
    def __eq__(self: Any, other: object) -> Any:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    return __eq__


def _hash_of(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(key(self))

    return __hash__


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, f.name) for f in dataclasses.fields(self)]


def _setstate(self: Any, state: list[Any]) -> None:
    for f, value in zip(dataclasses.fields(self), state, strict=True):
        object.__setattr__(self, f.name, value)
