"""``shoal create`` and ``shoal info`` run in-process through ``shoal.cli.main.main``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shoal.cli.create import parse_piece_size
from shoal.cli.main import main
from shoal.codec.magnet import Magnet
from shoal.codec.metainfo import Metainfo
from shoal.errors import ConfigError


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "stuff"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"hello" * 5000)
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 300)
    (root / "sub" / "empty").write_bytes(b"")
    return root


@pytest.mark.parametrize("flag", ["--v1", "--v2", "--hybrid"])
def test_create_writes_a_loadable_torrent(
    folder: Path, tmp_path: Path, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.torrent"
    argv = [
        "create",
        str(folder),
        "-o",
        str(out),
        flag,
        "-t",
        "http://a/announce,udp://b:1",
        "-t",
        "http://c/a",
    ]
    argv += [
        "--web-seed",
        "http://w/",
        "--piece-size",
        "32K",
        "--private",
        "--comment",
        "hi",
        "--source",
        "S",
    ]
    assert main(argv) == 0
    m = Metainfo.from_bytes(out.read_bytes())
    assert m.info.piece_length == 32768
    assert m.trackers == [["http://a/announce", "udp://b:1"], ["http://c/a"]]
    assert m.web_seeds == ["http://w/"]
    assert (m.info.private, m.comment, m.info.source, m.creation_date) == (True, "hi", "S", None)
    assert m.info.has_v2 == (flag != "--v1")
    assert m.info.has_v1 == (flag != "--v2")
    stdout = capsys.readouterr().out
    assert f"wrote {out}" in stdout
    assert m.info_hash.hex() in stdout or (m.info_hash_v2 is not None and m.info_hash_v2.hex() in stdout)


def test_create_refuses_to_overwrite(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.torrent"
    out.write_bytes(b"keep")
    assert main(["create", str(folder), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "exists" in err
    assert out.read_bytes() == b"keep"
    assert main(["create", str(folder), "-o", str(out), "-q", "--force", "--date"]) == 0
    assert Metainfo.from_bytes(out.read_bytes()).creation_date is not None


def test_create_default_output_name(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["create", str(folder), "-q"]) == 0
    assert Metainfo.from_bytes((tmp_path / "stuff.torrent").read_bytes()).info.name == "stuff"


@pytest.mark.parametrize(
    "bad",
    [["/does/not/exist"], ["PLACEHOLDER", "--piece-size", "1000"], ["PLACEHOLDER", "--piece-size", "big"]],
)
def test_create_errors_are_one_line(folder: Path, bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "create",
        *[str(folder) if a == "PLACEHOLDER" else a for a in bad],
        "-o",
        str(folder.parent / "o.t"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("shoal: ConfigError: ")
    assert err.count("\n") == 1


def test_parse_piece_size() -> None:
    assert parse_piece_size("auto") is None
    assert parse_piece_size("16384") == 16384
    assert parse_piece_size("256k") == 256 * 1024
    assert parse_piece_size("4M") == 4 * 1024 * 1024
    assert parse_piece_size("1MiB") == 1024 * 1024
    with pytest.raises(ConfigError):
        parse_piece_size("x1")


def test_info_text_and_json(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.torrent"
    assert main(["create", str(folder), "-o", str(out), "--hybrid", "-t", "http://a/announce", "-q"]) == 0
    m = Metainfo.from_bytes(out.read_bytes())
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert m.info_hash_v1 is not None and m.info_hash_v2 is not None
    for needle in (
        m.info_hash_v1.hex(),
        m.info_hash_v2.hex(),
        "hybrid",
        "b.bin",
        "sub/",
        "magnet:?xt=urn:btih:",
    ):
        assert needle in text
    assert main(["info", "--json", str(out)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["info_hash_v1"] == m.info_hash_v1.hex()
    assert d["piece_count"] == m.info.num_pieces
    assert d["total_size"] == 5 * 5000 + 256 * 300
    assert [f["path"] for f in d["files"]] == ["stuff/a.txt", "stuff/sub/b.bin", "stuff/sub/empty"]
    assert d["trackers"] == [["http://a/announce"]]
    assert d["private"] is False
    assert Magnet.parse(d["magnet"]).info_hash_v2 == m.info_hash_v2


def test_info_on_magnet(capsys: pytest.CaptureFixture[str]) -> None:
    uri = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=film&tr=udp://t:1&x.pe=1.2.3.4:5"
    assert main(["info", "--json", uri]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["name"], d["info_hash_v1"], d["trackers"], d["peers"]) == (
        "film",
        "ab" * 20,
        [["udp://t:1"]],
        ["1.2.3.4:5"],
    )
    assert main(["info", uri]) == 0
    assert "film" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("target", "error", "code"),
    [
        ("magnet:?xt=urn:btih:zz", "MagnetError", 3),
        ("/no/such.torrent", "ConfigError", 2),
    ],
)
def test_info_errors_are_one_line(
    target: str, error: str, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", target]) == code
    err = capsys.readouterr().err
    assert err.startswith(f"shoal: {error}: ")
    assert err.count("\n") == 1


def test_info_on_garbage_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.torrent"
    bad.write_bytes(b"d4:infod4:name2:..ee")
    assert main(["info", str(bad)]) == 3
    assert capsys.readouterr().err.count("\n") == 1


def test_the_program_ends_create_at_once_with_its_output_and_exit_code(folder: Path, tmp_path: Path) -> None:
    """``python -m shoal create`` (``console``: it ends the process with ``os._exit``) still prints everything and
    keeps the exit code."""
    out = tmp_path / "x.torrent"
    cmd = [sys.executable, "-m", "shoal", "create", str(folder), "-o", str(out), "-q", "--hybrid"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"wrote {out} (")
    assert [line.split(":")[0] for line in lines[1:]] == ["info-hash v1", "info-hash v2"]
    assert Metainfo.from_bytes(out.read_bytes()).info.has_v2
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 2
    assert "exists" in again.stderr
