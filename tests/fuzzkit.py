"""Helpers for the hostile-input tests: fuzz-target loading, corpus replay, memory bounds, hypothesis settings."""

from __future__ import annotations

import importlib.util
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
FUZZ_DIR = ROOT / "fuzz"
CORPUS_DIR = ROOT / "tests" / "fuzz" / "corpus"

# Property tests over hostile input: enough examples to matter, a per-example deadline that only a hang misses
# (the machine is shared, so no tight timing), no example database in the tree.
HOSTILE = settings(
    max_examples=300,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


def fuzz_targets() -> list[str]:
    return sorted(p.stem.removeprefix("fuzz_") for p in FUZZ_DIR.glob("fuzz_*.py"))


def load_target(name: str) -> ModuleType:
    path = FUZZ_DIR / f"fuzz_{name}.py"
    spec = importlib.util.spec_from_file_location(f"shoal_fuzz_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def corpus_files(name: str) -> list[Path]:
    directory = CORPUS_DIR / name
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else []


def peak_memory(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated by Python while ``fn`` runs (its result and exceptions are discarded)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        try:
            fn()
        except Exception:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base


def mutate(data: bytes, draw: Callable[[Any], Any]) -> bytes:
    """Apply 1-4 random byte-level edits (flip, insert, delete, truncate, duplicate a slice) to ``data``."""
    from hypothesis import strategies as st

    buf = bytearray(data)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup", "digit"]))
        pos = draw(st.integers(min_value=0, max_value=len(buf)))
        if kind == "flip" and pos < len(buf):
            buf[pos] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del buf[pos : pos + draw(st.integers(min_value=1, max_value=8))]
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "dup":
            end = draw(st.integers(min_value=pos, max_value=len(buf)))
            buf[pos:pos] = buf[pos:end]
        elif kind == "digit":
            buf[pos:pos] = draw(
                st.sampled_from([b"9", b"0", b"-", b"99999999999", b"4294967295", b"e", b":"])
            )
    return bytes(buf)
