"""benchmarks/bench_download_path.py runs the whole loop-thread download path to the end (no timing asserted)."""

from __future__ import annotations

from benchmarks.bench_download_path import measure


def test_a_small_download_runs_to_completion() -> None:
    assert measure(8, 256 * 1024) > 0.0  # returns only once the picker has every piece
