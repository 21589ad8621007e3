"""How long the payload itself took to cross, from the libtorrent side's ``--trace`` (lt_runner), start-up left out.

A downloader's wall time (what the transfer tables report as MB/s) also holds its process start-up, the seconds
before its first connection and its exit. Those are the same for the peers in case 2 (one libtorrent downloader
for both seeders) but not in case 1, and they are large on a fast machine: libtorrent's downloader makes its first
connection at its first tick, about 0.5 s after it adds the torrent. The transfer phase is measured on the
libtorrent peer that both sides of a comparison share, from its trace samples (wall clock ``t``, payload bytes
``done`` downloaded and ``up`` uploaded so far):

* cases 1 and 3: the seeders' ``up``, summed, from the first sample after the downloader started in which it has
  grown to the first in which it has grown by the whole torrent;
* case 2: the downloader's ``done``, from its first sample above 0 to its first at the torrent's size.

Both ends are seen one trace interval late at most (10 ms here), so the error is about an interval per run. Pure
functions over parsed samples: tested in ``tests/unit/test_bench_transfer_phase.py``.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TRACE_INTERVAL = 0.01
"""Seconds between the libtorrent runner's trace samples in the transfer benchmarks."""

END_SLACK = 0.5
"""Seconds after ``end`` still looked at: a seeder's sample that shows the last byte sent may be written after the
downloader has already exited (its last interval). Bytes of a later download do not count, as the window closes
at the first sample that reaches ``size``."""


def read_trace(path: Path) -> list[dict[str, Any]]:
    """The trace's sample lines (those with a ``t``), in file order; a missing file or a torn last line (a
    killed runner) gives what could be read."""
    samples: list[dict[str, Any]] = []
    try:
        text = path.read_text()
    except OSError:
        return samples
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "t" in obj and "phase" not in obj:
            samples.append(obj)
    return samples


def _series(samples: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[int]]:
    times: list[float] = []
    values: list[int] = []
    for s in samples:
        if key in s:
            times.append(float(s["t"]))
            values.append(int(s[key]))
    return times, values


def transfer_seconds(
    traces: Sequence[Sequence[dict[str, Any]]], key: str, size: int, *, start: float, end: float
) -> float | None:
    """Seconds from the first sample in ``[start, end + END_SLACK]`` where the sum over ``traces`` of ``key`` has grown past
    its value at ``start``, to the first where it has grown by ``size``; None if it never did in that window.

    ``key`` is ``"up"`` for seeders (their counters run on from earlier downloads: only growth counts) or
    ``"done"`` for a downloader."""
    series = [_series(trace, key) for trace in traces]
    base = []
    for times, values in series:
        i = bisect.bisect_right(times, start)
        base.append(values[i - 1] if i else 0)
    moments = sorted({t for times, _ in series for t in times if start <= t <= end + END_SLACK})
    first: float | None = None
    for moment in moments:
        grown = 0
        for (times, values), b in zip(series, base, strict=True):
            i = bisect.bisect_right(times, moment)
            if i:
                grown += values[i - 1] - b
        if first is None and grown > 0:
            first = moment
        if first is not None and grown >= size:
            return moment - first
    return None
