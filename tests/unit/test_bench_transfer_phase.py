"""benchmarks/transfer_phase.py: the transfer phase out of libtorrent runner traces (pure functions, no peers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks.transfer_phase import read_trace, transfer_seconds

MIB = 1 << 20


def samples(key: str, points: list[tuple[float, int]]) -> list[dict[str, object]]:
    return [{"t": t, key: v, "peers": []} for t, v in points]


def test_a_downloader_from_its_first_byte_to_its_last() -> None:
    trace = samples("done", [(10.0, 0), (10.5, 0), (10.51, 4 * MIB), (11.0, 60 * MIB), (11.51, 64 * MIB)])
    assert transfer_seconds([trace], "done", 64 * MIB, start=9.0, end=12.0) == pytest.approx(1.0)


def test_a_seeder_counts_only_what_it_sent_after_the_download_started() -> None:
    # 64 MiB already sent to an earlier downloader; this one starts at 20.0
    trace = samples("up", [(19.0, 64 * MIB), (20.2, 64 * MIB), (20.3, 70 * MIB), (20.8, 128 * MIB)])
    assert transfer_seconds([trace], "up", 64 * MIB, start=20.0, end=21.0) == pytest.approx(0.5)


def test_several_seeders_add_up() -> None:
    a = samples("up", [(1.0, 0), (1.1, 10 * MIB), (1.4, 32 * MIB)])
    b = samples("up", [(1.05, 0), (1.25, 20 * MIB), (1.35, 32 * MIB)])
    # 64 MiB in all first at 1.4 (a's 32 + b's 32); the first byte at 1.1
    assert transfer_seconds([a, b], "up", 64 * MIB, start=0.5, end=2.0) == pytest.approx(0.3)


def test_an_unfinished_transfer_or_an_empty_window_has_no_figure() -> None:
    trace = samples("done", [(1.0, 0), (1.5, 10 * MIB)])
    assert transfer_seconds([trace], "done", 64 * MIB, start=0.0, end=2.0) is None
    assert transfer_seconds([trace], "done", MIB, start=5.0, end=6.0) is None
    assert transfer_seconds([], "up", MIB, start=0.0, end=1.0) is None


def test_read_trace_keeps_samples_and_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    lines = [
        json.dumps({"t": 1.0, "phase": "started"}),
        json.dumps({"t": 1.1, "done": 0, "up": 0, "peers": []}),
        json.dumps({"t": 1.2, "done": 5, "up": 0, "peers": []}),
        '{"t": 1.3, "done": 9',
    ]
    path.write_text("\n".join(lines))
    assert [s["done"] for s in read_trace(path)] == [0, 5]
    assert read_trace(tmp_path / "missing.jsonl") == []


def test_a_seeders_last_sample_after_the_downloader_exited_still_counts() -> None:
    # the downloader's process ended at 2.0; the seeder's sample showing the whole torrent sent came at 2.008
    trace = samples("up", [(1.0, 0), (1.2, 10 * MIB), (2.008, 64 * MIB)])
    assert transfer_seconds([trace], "up", 64 * MIB, start=0.9, end=2.0) == pytest.approx(0.808)
