"""Every coverage-guided fuzz target (fuzz/fuzz_*.py): replay its committed corpus, then a short atheris run.

The long runs are documented in docs/RELIABILITY.md (``-max_total_time=600`` per target). Here each target gets a
fixed seed and a few thousand inputs so CI stays well under a minute; a finding fails with libFuzzer's report and
the crashing input saved next to the temporary corpus.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzkit import ROOT, corpus_files, fuzz_targets, load_target
from peers import missing

TARGETS = fuzz_targets()
SMOKE_RUNS = int(os.environ.get("SHOAL_FUZZ_RUNS", "2000"))


def test_every_target_has_a_seed_corpus() -> None:
    assert TARGETS, "no fuzz targets found in fuzz/"
    empty = [name for name in TARGETS if not corpus_files(name)]
    assert not empty, f"fuzz targets without seeds in tests/fuzz/corpus/: {empty}"


@pytest.mark.parametrize("name", TARGETS)
def test_corpus_replays_cleanly(name: str) -> None:
    target = load_target(name)
    for path in corpus_files(name):
        try:
            target.TestOneInput(path.read_bytes())
        except Exception as exc:
            raise AssertionError(f"{path.relative_to(ROOT)}: {exc!r}") from exc


@pytest.mark.parametrize("name", TARGETS)
def test_atheris_short_run(name: str, tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        missing("atheris not installed (it is in the test extra: pip install -e '.[test]')")
    work = tmp_path / "corpus"
    work.mkdir()
    runs = min(SMOKE_RUNS, getattr(load_target(name), "SMOKE_RUNS", SMOKE_RUNS))
    cmd = [
        sys.executable,
        str(ROOT / "fuzz" / f"fuzz_{name}.py"),
        f"-runs={runs}",
        "-max_total_time=20",
        "-timeout=5",
        "-rss_limit_mb=1024",
        "-seed=12345",
        f"-artifact_prefix={tmp_path}/",
        str(work),
        str(ROOT / "tests" / "fuzz" / "corpus" / name),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-40:])
        pytest.fail(f"fuzz target {name} found a problem (exit {proc.returncode}):\n{tail}", pytrace=False)
