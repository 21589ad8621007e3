"""The harness pieces on their own: content comparison, opentracker's allow-list, the libtorrent subprocess
runner, and namespaces that disappear when closed."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

import peers
from interop.conftest import SAMPLE_PIECE
from interop.harness import content, proc
from interop.harness.libtorrent_peer import runner_command
from interop.harness.netns import Netns
from interop.harness.opentracker import OpenTracker

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def test_sample_has_the_awkward_shapes(sample: content.Content) -> None:
    sizes = content.list_files(sample.path)
    assert sizes["empty.txt"] == 0
    assert 0 < sizes["small.txt"] < SAMPLE_PIECE
    assert sizes["big.bin"] > 10 * SAMPLE_PIECE
    assert sample.total_size % SAMPLE_PIECE != 0
    assert sizes == sample.files


def test_tree_comparison_finds_each_kind_of_difference(tmp_path: Path, sample: content.Content) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(sample.path, copy)
    assert content.tree_differences(sample.path, copy) == []
    (copy / "empty.txt").unlink()
    assert content.tree_differences(sample.path, copy) == ["missing: empty.txt"]
    assert content.tree_differences(sample.path, copy, skip_empty=True) == []
    with open(copy / "sub/dir/tail.bin", "r+b") as f:
        f.seek(100)
        f.write(b"X")
    assert (
        "content differs: sub/dir/tail.bin: 1 block(s) of 16 KiB differ, first at byte 0, 0 of them zeros"
        in content.tree_differences(sample.path, copy, skip_empty=True)
    )
    with open(copy / "sub/dir/tail.bin", "r+b") as f:
        f.seek(3 * 16384)
        f.write(bytes(16384))  # a block never written reads as zeros
    assert (
        "content differs: sub/dir/tail.bin: 2 block(s) of 16 KiB differ, first at byte 0, 1 of them zeros"
        in content.tree_differences(sample.path, copy, skip_empty=True)
    )
    (copy / "extra").write_bytes(b"1")
    assert "unexpected: extra" in content.tree_differences(sample.path, copy, skip_empty=True)
    with pytest.raises(AssertionError, match="trees differ"):
        content.assert_same_tree(sample.path, copy)


def test_opentracker_allow_list_reloads(
    tmp_path: Path, sample: content.Content, make_tracker: Callable[..., OpenTracker]
) -> None:
    peers.require_libtorrent()
    ot = make_tracker()
    t = content.make_torrent(sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE)
    assert not ot._probe_allowed(t.info_hash)
    ot.allow(t.info_hash)
    assert ot._probe_allowed(t.info_hash)
    assert ot.scrape(t.info_hash) == {"complete": 0, "incomplete": 0, "downloaded": 0}


def test_lt_runner_subprocesses_transfer_and_report(tmp_path: Path, sample: content.Content) -> None:
    peers.require_libtorrent()
    t = content.make_torrent(sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE)
    seeder = proc.start(runner_command("seed", t.path, sample.parent, timeout=60), stdout=subprocess.PIPE)
    leecher = None
    try:
        assert seeder.stdout is not None
        first = json.loads(seeder.stdout.readline())
        assert first["event"] == "listening"
        cmd = runner_command(
            "get",
            t.path,
            tmp_path / "dl",
            peers=[("127.0.0.1", first["port"])],
            timeout=60,
            disk_io_write_mode="write_through",  # the benchmarks' extra libtorrent row: the option is taken
        )
        leecher = proc.start(cmd, stdout=subprocess.PIPE)
        out, _ = leecher.communicate(timeout=90)
        events = [json.loads(line) for line in out.decode().splitlines()]
        assert leecher.returncode == 0, events
        assert [e["event"] for e in events] == ["listening", "complete", "exit"]
        assert events[1]["downloaded"] >= sample.total_size
        assert events[2]["max_rss_kib"] > 0 and events[2]["cpu_user"] > 0
        content.assert_same_tree(sample.path, tmp_path / "dl" / sample.name)
    finally:
        proc.stop(leecher)
        proc.stop(seeder)
    assert seeder.returncode == 0  # SIGTERM is a clean stop for the runner


def test_netns_is_deleted_on_close(make_netns: Callable[[], Netns]) -> None:
    ns = make_netns()
    assert ns.name in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    got = ns.run(["ip", "-o", "-4", "addr", "show"], check=True).stdout
    assert ns.ns_addr in got
    sleeper = ns.start(["sleep", "300"])
    ns.close()
    assert sleeper.poll() is not None
    assert ns.name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    ns.close()  # idempotent


def test_opentracker_allow_list_given_at_start_is_in_force_at_once(
    tmp_path: Path, sample: content.Content, make_tracker: Callable[..., OpenTracker]
) -> None:
    peers.require_libtorrent()
    t = content.make_torrent(sample.path, tmp_path / "s.torrent", piece_length=SAMPLE_PIECE)
    ot = make_tracker(info_hashes=[t.info_hash])
    assert ot._probe_allowed(t.info_hash)


def test_http_open_raises_a_reset_as_connection_error() -> None:
    # urllib wraps a reset while it sends the request in URLError; the harness probes (opentracker's allow-list
    # reload) catch ConnectionError. A 16 MiB body makes sure the reset lands while the request is being sent.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def reset_one() -> None:
        conn, _ = server.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # RST instead of FIN

    t = threading.Thread(target=reset_one, daemon=True)
    t.start()
    try:
        with pytest.raises(ConnectionError):
            proc.http_open(urllib.request.Request(f"http://127.0.0.1:{port}/", b"x" * (16 << 20)), timeout=5)
    finally:
        t.join(timeout=5)
        server.close()
