"""`shoal demo` runs offline on loopback, verifies its result, and says how to go on with a real torrent."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.cli.main import main


@pytest.mark.timeout(90)
def test_demo_completes_and_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--size-mib", "8", "--leechers", "3", "--dir", str(tmp_path), "--timeout", "60"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verified: all 3 copies are identical" in out
    assert "shoal get" in out
    for i in (1, 2, 3):
        assert (tmp_path / f"leecher{i}" / "shoal-demo.bin").stat().st_size == 8 * 1024 * 1024


def test_demo_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--leechers", "17"]) == 2
    assert "leechers 17 not in 1..16" in capsys.readouterr().err
