from __future__ import annotations

from pathlib import Path

import pytest

from shoal.cli.main import main


def test_shoal_dht_runs_and_prints_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "dht.sqlite"
    argv = ["dht", "--port", "0", "--bind", "127.0.0.1", "--bootstrap", "127.0.0.1:9", "--db", str(db)]
    code = main([*argv, "--interval", "0.2", "--duration", "0.5"])
    out = capsys.readouterr().out
    assert code == 0
    assert "listening on udp 127.0.0.1:" in out
    assert "nodes 0 (ipv4)" in out and "lookups" in out and "stored peers" in out
    assert db.exists()


def test_shoal_dht_bad_bootstrap_address(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dht", "--port", "0", "--bind", "127.0.0.1", "--bootstrap", "nonsense", "--duration", "0.1"])
    assert code == 2
    assert "ConfigError" in capsys.readouterr().err
