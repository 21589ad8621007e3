"""Micro-benchmark: what making Shoal's value classes costs, ``@dataclass`` against ``@record``.

Three measurements, each in alternated rounds so the machine's load falls on both sides alike:

* ``class``: making 200 classes of three fields, with ``@dataclass(frozen=True, slots=True)``, with
  ``@dataclass(slots=True)`` and with ``@record`` / ``@record(frozen=False)`` (ms per class, the median round);
* ``instance``: building 200,000 instances of a frozen and of a plain three-field class each way (ns each): the
  generated ``__init__`` is on the per-message path;
* ``import`` (only with ``--baseline-src DIR``): CPU seconds (user+sys, from ``wait4``) of a fresh interpreter
  importing what ``shoal get`` needs, with this tree's ``shoal`` against the one in ``DIR`` (e.g. a ``git
  worktree`` of the commit before ``@record``: ``git worktree add /tmp/base COMMIT``, then ``--baseline-src
  /tmp/base/src``). Bytecode caches are written first, as a pip install has them.

Run: ``.venv/bin/python benchmarks/bench_records.py [--rounds 5] [--baseline-src DIR]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shoal.records import record

IMPORTS = (
    "import shoal.cli.get, shoal.engine.session, shoal.engine.torrent, shoal.storage.files, shoal.engine.peer, "
    "shoal.storage.resume"
)


def _body() -> dict[str, Any]:
    return {"__module__": __name__, "__annotations__": {"a": "int", "b": "int", "c": "bytes"}}


def class_ms(decorate: Callable[[type], type], n: int = 200) -> float:
    start = time.perf_counter()
    for i in range(n):
        decorate(type(f"C{i}", (), _body()))
    return (time.perf_counter() - start) / n * 1e3


def instance_ns(cls: Any, n: int = 200_000) -> float:
    start = time.perf_counter()
    for i in range(n):
        cls(i, 2, b"")
    return (time.perf_counter() - start) / n * 1e9


def in_turns(
    subjects: dict[str, Any], measure: Callable[[Any], float], rounds: int
) -> dict[str, list[float]]:
    """``measure`` of every subject, the subjects taking turns within each of ``rounds`` rounds."""
    times: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(rounds):
        for name, subject in subjects.items():
            times[name].append(measure(subject))
    return times


def import_cpu(src: Path | None) -> float:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    start = os.times()
    subprocess.run([sys.executable, "-c", IMPORTS], env=env, check=True)
    end = os.times()
    return (end.children_user - start.children_user) + (end.children_system - start.children_system)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline-src", type=Path, help="a src/ folder holding the shoal to compare against")
    args = ap.parse_args()

    makers: dict[str, Callable[[type], type]] = {
        "dataclass frozen": dataclasses.dataclass(frozen=True, slots=True),
        "record frozen": record,
        "dataclass plain": dataclasses.dataclass(slots=True),
        "record plain": record(frozen=False),
    }
    for make in makers.values():
        class_ms(make, 20)  # warm-up
    classes = in_turns(makers, class_ms, args.rounds)
    print("class creation, ms per class (median of rounds):")
    for name, times in classes.items():
        print(f"  {name:18} {statistics.median(times):.3f}   rounds: {' / '.join(f'{t:.3f}' for t in times)}")

    kinds = {name: make(type("Value", (), _body())) for name, make in makers.items()}
    print("instance creation, ns each (median of rounds):")
    for name, times in in_turns(kinds, instance_ns, args.rounds).items():
        print(f"  {name:18} {statistics.median(times):.0f}")

    if args.baseline_src is not None:
        here = Path(__file__).resolve().parents[1] / "src"
        for src in (here, args.baseline_src):
            import_cpu(src)  # writes the bytecode caches
        cpu: dict[str, list[float]] = {"this tree": [], "baseline": []}
        for _ in range(args.rounds * 2):
            cpu["this tree"].append(import_cpu(here))
            cpu["baseline"].append(import_cpu(args.baseline_src))
        print(f"import CPU s of `{IMPORTS}` (median of {args.rounds * 2} alternated runs):")
        for name, times in cpu.items():
            print(
                f"  {name:10} {statistics.median(times):.3f}   runs: {' / '.join(f'{t:.2f}' for t in times)}"
            )
        ratio = statistics.median(cpu["this tree"]) / statistics.median(cpu["baseline"])
        print(f"  ratio this tree / baseline: {ratio:.2f}x")


if __name__ == "__main__":
    main()
