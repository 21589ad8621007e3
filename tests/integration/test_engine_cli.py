"""`shoal get`, `shoal seed` and `shoal check` end to end on loopback (seeder in a subprocess, get in-process)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.cli.main import main
from swarm_helpers import MULTI_FILE_SPEC, make_payload, make_torrent, same_tree

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"seeder exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"seeder did not listen on {port} within {timeout}s")


@contextlib.contextmanager
def shoal_seed(torrent: Path, data: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shoal",
                "seed",
                str(torrent),
                str(data),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            wait_port(port, proc)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def multi(tmp_path: Path) -> tuple[Path, Path]:
    src = make_payload(tmp_path / "src" / "multi", MULTI_FILE_SPEC)
    torrent = tmp_path / "multi.torrent"
    torrent.write_bytes(make_torrent(src, piece_length=256 * 1024))
    return src, torrent


def test_check_good_and_damaged(multi: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    src, torrent = multi
    assert main(["check", str(torrent), str(src)]) == 0
    assert "13 of 13 pieces ok" in capsys.readouterr().out
    big = src / "sub" / "big.bin"
    data = bytearray(big.read_bytes())
    data[300_000] ^= 0xFF
    big.write_bytes(bytes(data))
    assert main(["check", str(torrent), str(src)]) == 1
    out = capsys.readouterr().out
    assert "12 of 13 pieces ok" in out
    assert "sub/big.bin" in out


def test_check_missing_data_path(multi: tuple[Path, Path], tmp_path: Path) -> None:
    _, torrent = multi
    assert main(["check", str(torrent), str(tmp_path / "nope")]) == 2


def test_get_from_shoal_seed(
    multi: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, torrent = multi
    renamed = tmp_path / "elsewhere" / "renamed"
    renamed.parent.mkdir()
    src.rename(renamed)  # DATA_PATH may have another name than the torrent
    port = free_port()
    with shoal_seed(torrent, renamed, port, tmp_path / "seed.log"):
        out = tmp_path / "out"
        code = main(
            [
                "get",
                str(torrent),
                "-o",
                str(out),
                "--no-seed",
                "--port",
                "0",
                "--peer",
                f"127.0.0.1:{port}",
                "--timeout",
                "60",
            ]
        )
        assert code == 0, (tmp_path / "seed.log").read_text()
    assert same_tree(renamed, out / "multi")
    text = capsys.readouterr().out
    assert "multi: complete" in text
    # The same command again: everything is already there (resume), nothing is downloaded.
    assert main(["get", str(torrent), "-o", str(out), "--no-seed", "--port", "0", "--timeout", "30"]) == 0
    assert "downloaded 0 B" in capsys.readouterr().out


def test_seed_refuses_wrong_data(multi: tuple[Path, Path], tmp_path: Path) -> None:
    src, torrent = multi
    (src / "small.bin").write_bytes(b"x" * 1000)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "shoal", "seed", str(torrent), str(src), "--port", "0", "--bind", "127.0.0.1"],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert b"does not match the torrent" in proc.stdout
