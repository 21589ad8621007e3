"""`shoal get`, `shoal seed` and `shoal check` end to end on loopback (seeder in a subprocess, get in-process)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.cli.main import main
from swarm_helpers import MULTI_FILE_SPEC, make_payload, make_torrent, same_tree
from swarm_helpers import shoal_seed as _shoal_seed

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def seeding(torrent: Path, data: Path, workdir: Path) -> Iterator[int]:
    """`shoal seed` on an OS-chosen port (read back from its --stats file); yields the port."""
    with _shoal_seed(torrent, data, workdir) as proc:
        yield proc.port()


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
    with seeding(torrent, renamed, tmp_path / "seed") as port:
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


def test_seed_hashes_in_forked_processes_before_its_session(multi: tuple[Path, Path], tmp_path: Path) -> None:
    """`shoal seed` checks the data before its session starts (storage.fork_check) and the session trusts that:
    the pieces are counted as verified by the caller's check, not hashed again by the engine."""
    src, torrent = multi
    with _shoal_seed(torrent, src, tmp_path / "seed") as proc:
        proc.port()
        stats = proc.stats()
    counters = stats["counters"]
    assert isinstance(counters, dict)
    assert int(stats["pieces_have"]) == 13  # type: ignore[call-overload]
    assert int(counters.get("pieces_from_recheck", 0)) == 13  # set only for verified_pieces


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(multi: tuple[Path, Path], tmp_path: Path) -> None:
    import signal

    from swarm_helpers import shoal_get

    src, torrent = multi
    out = tmp_path / "out"
    with seeding(torrent, src, tmp_path / "seed") as port:
        args = ["--no-seed", "--peer", f"127.0.0.1:{port}"]
        with shoal_get(torrent, out, tmp_path / "run1", *args, "--download-limit", "400000") as first:
            first.wait_stats(lambda s: int(s["pieces_have"]) >= 3, 60, "a few pieces")  # type: ignore[call-overload]
            first.proc.send_signal(signal.SIGINT)
            assert first.wait_exit(timeout=30) == 130
            had = int(first.stats()["pieces_have"])  # type: ignore[call-overload]
        assert 3 <= had < 13
        with shoal_get(torrent, out, tmp_path / "run2", *args, "--timeout", "60") as second:
            assert second.wait_exit(timeout=90) == 0, second.log()
            counters = second.stats()["counters"]
    assert isinstance(counters, dict)
    assert int(counters["pieces_from_resume"]) >= had  # clean stop: trusted from resume data, not re-hashed
    assert int(counters.get("pieces_from_recheck", 0)) == 0
    assert same_tree(src, out / "multi")


def test_get_from_http_url(multi: tuple[Path, Path], tmp_path: Path) -> None:
    import http.server
    import threading

    src, torrent = multi
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(torrent.parent))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with seeding(torrent, src, tmp_path / "seed") as port:
            url = f"http://127.0.0.1:{server.server_address[1]}/{torrent.name}"
            code = main(
                [
                    "get",
                    url,
                    "-o",
                    str(tmp_path / "out"),
                    "--no-seed",
                    "--port",
                    "0",
                    "--peer",
                    f"127.0.0.1:{port}",
                    "--timeout",
                    "60",
                ]
            )
            assert code == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert same_tree(src, tmp_path / "out" / "multi")


def test_get_selected_files_only(multi: tuple[Path, Path], tmp_path: Path) -> None:
    src, torrent = multi
    with seeding(torrent, src, tmp_path / "seed") as port:
        out = tmp_path / "out"
        # files in torrent order: empty.txt, small.bin, sub/big.bin, sub/deeper/tail.dat
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
                "--files",
                "3",
                "--timeout",
                "60",
            ]
        )
        assert code == 0
    assert (out / "multi" / "sub" / "deeper" / "tail.dat").read_bytes() == (
        src / "sub" / "deeper" / "tail.dat"
    ).read_bytes()
    # big.bin is never created: its bytes of the piece it shares with tail.dat wait in a part file
    assert not (out / "multi" / "sub" / "big.bin").exists()
    assert [p.name for p in (out / ".shoal.parts").glob("*/*")] == ["2.part"]


def test_get_bad_file_index(
    multi: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, torrent = multi
    assert main(["get", str(torrent), "-o", str(tmp_path / "o"), "--port", "0", "--files", "9"]) == 2
    assert "file index 9 out of range 0..3" in capsys.readouterr().err


def test_seed_reports_a_port_in_use_before_it_hashes(
    multi: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    import shoal.cli.seed as seed_cli

    def hashed(*args: object, **kwargs: object) -> None:
        raise AssertionError("hashed before the port was checked")

    monkeypatch.setattr(seed_cli, "recheck_forked", hashed)
    src, torrent = multi
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["seed", str(torrent), str(src), "--bind", "127.0.0.1", "--port", str(port), "--quiet"])
    assert code != 0
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and len(err.strip().splitlines()) == 1
