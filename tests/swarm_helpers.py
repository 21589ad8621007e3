"""Helpers for engine, interop and hostile swarm tests: sample payloads and v1 .torrent files built in-test.

``make_payload(root, spec, seed)`` writes files; ``make_torrent(path, piece_length, trackers)`` returns the .torrent
bytes for a file or folder (BEP 3 v1, files in sorted order like mktorrent); ``same_tree(a, b)`` compares trees.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Sequence
from pathlib import Path

from shoal.codec.bencode import encode

# The acceptance layout: an empty file, one smaller than a piece, one spanning many pieces, and a total that makes
# the last piece a non-power-of-two size.
MULTI_FILE_SPEC: list[tuple[str, int]] = [
    ("empty.txt", 0),
    ("small.bin", 1000),
    ("sub/big.bin", 3 * 1024 * 1024 + 12345),
    ("sub/deeper/tail.dat", 77_777),
]


def make_payload(root: Path, spec: Sequence[tuple[str, int]], seed: int = 1) -> Path:
    """Write files named in ``spec`` under ``root`` with seeded random content; returns ``root``."""
    rng = random.Random(seed)
    for rel, size in spec:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    return root


def make_file(path: Path, size: int, seed: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(rng.randbytes(n))
            left -= n
    return path


def _files(path: Path) -> list[tuple[list[str], Path]]:
    if path.is_file():
        return [([path.name], path)]
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            out.append((list(full.relative_to(path).parts), full))
    out.sort(key=lambda item: item[0])
    return out


def make_torrent(
    path: Path, piece_length: int = 256 * 1024, trackers: Sequence[str] = (), private: bool = False
) -> bytes:
    files = _files(path)
    pieces = bytearray()
    buf = bytearray()
    for _, full in files:
        with full.open("rb") as f:
            while chunk := f.read(1 << 20):
                buf += chunk
                while len(buf) >= piece_length:
                    pieces += hashlib.sha1(buf[:piece_length]).digest()
                    del buf[:piece_length]
    if buf:
        pieces += hashlib.sha1(buf).digest()
    info: dict[bytes, object] = {
        b"name": path.name.encode(),
        b"piece length": piece_length,
        b"pieces": bytes(pieces),
    }
    if path.is_file():
        info[b"length"] = path.stat().st_size
    else:
        info[b"files"] = [
            {b"length": full.stat().st_size, b"path": [p.encode() for p in parts]} for parts, full in files
        ]
    if private:
        info[b"private"] = 1
    top: dict[bytes, object] = {b"info": info, b"created by": b"shoal tests"}
    if trackers:
        top[b"announce"] = trackers[0].encode()
        top[b"announce-list"] = [[t.encode()] for t in trackers]
    return encode(top)


def info_hash_of(torrent: bytes) -> bytes:
    from shoal.codec.bencode import raw_value

    raw = raw_value(torrent, b"info")
    assert raw is not None
    return hashlib.sha1(raw).digest()


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha1 of every regular file under ``root`` (or of ``root`` itself if a file)."""
    return {"/".join(parts): hashlib.sha1(full.read_bytes()).hexdigest() for parts, full in _files(root)}


def same_tree(a: Path, b: Path, skip_empty: bool = False) -> bool:
    da, db = tree_digest(a), tree_digest(b)
    if skip_empty:
        empty = hashlib.sha1(b"").hexdigest()
        da = {k: v for k, v in da.items() if v != empty}
        db = {k: v for k, v in db.items() if v != empty}
    return da == db


# --- Shoal as a subprocess (the real CLI), for interop and hostile tests ------------------------------------------

REPO = Path(__file__).resolve().parents[1]


class ShoalProc:
    """``python -m shoal get|seed ... --stats FILE`` in a subprocess; read its JSON stats; always stopped.

    Use as a context manager. ``stats()`` is the last JSON written (or {}), ``wait_stats(pred)`` polls it.
    """

    def __init__(self, args: Sequence[str], workdir: Path, *, netns_exec: Sequence[str] = ()) -> None:
        import subprocess
        import sys

        workdir.mkdir(parents=True, exist_ok=True)
        self.stats_path = workdir / "stats.json"
        self.log_path = workdir / "shoal.log"
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        verbose = ["-vv"] if os.environ.get("SHOAL_TEST_DEBUG") else []
        cmd = [
            *netns_exec,
            sys.executable,
            "-m",
            "shoal",
            *verbose,
            *args,
            "--stats",
            str(self.stats_path),
            "-q",
        ]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def __enter__(self) -> ShoalProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, object]:
        import json

        try:
            return dict(json.loads(self.stats_path.read_text()))
        except (OSError, ValueError):
            return {}

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def wait_stats(self, pred: object, timeout: float, what: str) -> dict[str, object]:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.stats()
            if st and pred(st):  # type: ignore[operator]
                return st
            if self.proc.poll() is not None:
                st = self.stats()
                if st and pred(st):  # type: ignore[operator]
                    return st
                raise AssertionError(f"shoal exited ({self.proc.returncode}) before {what}: {self.log()}")
            time.sleep(0.1)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}; stats {self.stats()}; {self.log()}"
        )

    def wait_exit(self, timeout: float) -> int:
        import subprocess

        try:
            return int(self.proc.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"shoal did not exit within {timeout}s; stats {self.stats()}; {self.log()}")

    def port(self, timeout: float = 30.0) -> int:
        st = self.wait_stats(lambda s: s.get("listen_port"), timeout, "the listening port")
        return int(st["listen_port"])  # type: ignore[call-overload]

    def kill9(self) -> None:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def shoal_get(torrent: Path, out: Path, workdir: Path, *extra: str, bind: str = "127.0.0.1") -> ShoalProc:
    return ShoalProc(["get", str(torrent), "-o", str(out), "--port", "0", "--bind", bind, *extra], workdir)


def shoal_seed(torrent: Path, data: Path, workdir: Path, *extra: str, bind: str = "127.0.0.1") -> ShoalProc:
    return ShoalProc(["seed", str(torrent), str(data), "--port", "0", "--bind", bind, *extra], workdir)


def wait_seed_registered(tracker: object, info_hash_hex: str, timeout: float = 20.0, count: int = 1) -> None:
    """Wait until the tracker's scrape shows ``count`` seeds (so a peer added next hears of them at once)."""
    import time

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = tracker.scrape(info_hash_hex)  # type: ignore[attr-defined]
            if int(last.get("complete", 0)) >= count:  # type: ignore[attr-defined]
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"tracker never listed {count} seed(s) for {info_hash_hex}: {last}")
