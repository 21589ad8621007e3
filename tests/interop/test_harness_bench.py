"""The benchmark plumbing works end to end on a small size and leaves no process behind; `shoal bench` says
clearly when libtorrent is missing."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import peers
from shoal.cli.main import main

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


def _children() -> set[int]:
    me = os.getpid()
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == me:
                out.add(int(d.name))
    return out


@pytest.mark.parametrize("case", ["download", "seed", "swarm"])
def test_transfer_benchmark_baseline_runs_and_cleans_up(tmp_path: Path, case: str) -> None:
    peers.require_libtorrent()
    from benchmarks import bench_transfer

    before = _children()
    tables = bench_transfer.run(case, size=4 << 20, runs=1, workdir=tmp_path, shoal=False)
    text = tables[0].render()
    lt_row = tables[0].rows[0]
    assert lt_row.who.startswith("libtorrent"), text
    assert lt_row.mb_s and lt_row.mb_s > 0, text
    assert lt_row.cpu_s and lt_row.cpu_s > 0, text
    assert lt_row.rss_mib and lt_row.rss_mib > 1, text
    assert "| libtorrent" in tables[0].render(markdown=True)
    assert _children() <= before


def test_bench_without_libtorrent_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec

    def fake(name: str, *args: object) -> object:
        return None if name == "libtorrent" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    assert main(["bench", "download", "--size", "1M"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "libtorrent" in err, err


def test_bench_rejects_a_bad_size(capsys: pytest.CaptureFixture[str]) -> None:
    peers.require_libtorrent()
    assert main(["bench", "download", "--size", "12X"]) == 2
    assert "12X" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["download", "seed"])
def test_transfer_benchmark_measures_shoal_too(tmp_path: Path, case: str) -> None:
    peers.require_libtorrent()
    from benchmarks import bench_transfer

    before = _children()
    table = bench_transfer.run(case, size=4 << 20, runs=1, workdir=tmp_path)[0]
    text = table.render()
    shoal_row = next(r for r in table.rows if r.who.startswith("shoal"))
    assert shoal_row.mb_s and shoal_row.mb_s > 0, text
    assert shoal_row.cpu_s and shoal_row.cpu_s > 0, text
    names = [r.who for r in table.rows]
    assert "ratio shoal/libtorrent" in names, text
    if case == "download":  # libtorrent also ran with its own way of not keeping written data cached
        wt = table.rows[names.index("libtorrent (write_through) downloads")]
        assert wt.mb_s and wt.mb_s > 0, text
        assert names[-1] == "ratio shoal/write_through", text
    else:  # the best ratio any seeder could reach against the libtorrent downloader here
        assert any(
            n.startswith("ceiling on this machine: the libtorrent downloader alone needs")
            for n in table.notes
        )
    assert _children() <= before


def test_run_orders_put_each_peer_in_each_slot_equally_often() -> None:
    from benchmarks import bench_transfer

    for kinds in (2, 3):
        orders = bench_transfer.run_orders(6, kinds)
        assert all(sorted(o) == list(range(kinds)) for o in orders)
        for slot in range(kinds):
            assert sorted(o[slot] for o in orders) == sorted(list(range(kinds)) * (6 // kinds))
    assert bench_transfer.run_orders(5, 3) == bench_transfer.run_orders(5, 3)  # a fixed seed


def test_create_benchmark_runs_small_and_prints_the_hashing_floor(tmp_path: Path) -> None:
    peers.require_libtorrent()
    peers.require_binary("mktorrent")
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_create.py"
    cmd = [
        sys.executable,
        str(script),
        "--size-mib",
        "4",
        "--rounds",
        "1",
        "--workdir",
        str(tmp_path / "work"),
    ]
    before = _children()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "| shoal hybrid |" in out and "| libtorrent hybrid |" in out, out
    assert "hashing floor (hashlib, one core, best of 1): v1 " in out, out
    assert "shoal hybrid / libtorrent hybrid:" in out and "the floor)" in out, out
    assert not (tmp_path / "work").exists()  # its scratch folder is removed
    assert _children() <= before
