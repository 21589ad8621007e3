"""Support for Shoal's coverage-guided fuzz targets (``fuzz/fuzz_<target>.py``).

Each target is a small script with a ``TestOneInput(data: bytes) -> None`` that feeds ``data`` to one parser and
lets through only the parser's documented errors (subclasses of :class:`shoal.errors.ShoalError`). Anything else,
an ``AssertionError`` from a property check, a ``RecursionError``, a ``MemoryError`` or a hang, is a finding.

The same ``TestOneInput`` is used three ways:

* under atheris (libFuzzer) by running the script: ``python fuzz/fuzz_bencode.py -max_total_time=600 corpus/``;
* by ``tests/hostile/test_fuzz_smoke.py``, which runs every script for a few thousand inputs in CI;
* by the same test, which replays every file in ``tests/fuzz/corpus/<target>/`` without atheris.

atheris is only imported by :func:`run`, so importing a target (for replay) does not need it.
"""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Callable, Sequence

TestOneInput = Callable[[bytes], None]


def instrument_shoal(prefix: str = "shoal") -> int:
    """Add atheris coverage instrumentation to every loaded function of the ``shoal`` package.

    ``atheris.instrument_all()`` walks the whole interpreter (about 12 s here); instrumenting only our own code is
    instant and is what coverage guidance needs. Returns the number of functions instrumented.
    """
    import atheris

    count = 0
    for obj in gc.get_objects():
        if not isinstance(obj, types.FunctionType):
            continue
        module = getattr(obj, "__module__", None)
        if not isinstance(module, str) or not (module == prefix or module.startswith(prefix + ".")):
            continue
        if module == __name__:
            continue
        try:
            atheris.instrument_func(obj)
        except Exception:  # a function atheris cannot patch stays uninstrumented
            continue
        count += 1
    return count


def run(test_one_input: TestOneInput, argv: Sequence[str] | None = None) -> None:
    """Instrument Shoal and hand ``test_one_input`` to libFuzzer with the command-line arguments."""
    import atheris

    instrument_shoal()
    atheris.Setup(list(sys.argv if argv is None else argv), test_one_input)
    atheris.Fuzz()
