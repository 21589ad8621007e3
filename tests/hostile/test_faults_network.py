"""Network faults end to end through the engine (cases 38, 40, 50c): a tracker that hangs, answers garbage, HTTP 500
or a failure reason, and then recovers; every peer leaving in the middle of a download and a new one arriving.
None of these is a torrent error: the torrent keeps downloading state, retries, and completes once a source works.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from faultkit import FAST, bad_pieces, seeder, wait_status
from peers import require_binary
from shoal.codec import bencode
from shoal.codec.compact import encode_peer
from shoal.codec.metainfo import Metainfo
from shoal.engine import alerts as al
from shoal.engine.handle import TorrentState
from shoal.engine.session import Session
from shoal.errors import ShoalError
from shoal.types import PeerAddr
from swarm_helpers import make_payload, make_torrent, same_tree

pytestmark = pytest.mark.timeout(180)

PIECE = 32 * 1024
SPEC = [("a.bin", 2_000_000), ("sub/b.bin", 600_001)]


class FakeTracker:
    """An HTTP tracker on loopback whose behaviour the test switches: hang, garbage, 500, failure, ok."""

    def __init__(self) -> None:
        self.mode = "hang"
        self.peers: list[PeerAddr] = []
        self.requests: dict[str, int] = {}
        self.server: asyncio.Server | None = None
        self._hung: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/announce"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        mode = self.mode
        self.requests[mode] = self.requests.get(mode, 0) + 1
        if mode == "hang":
            self._hung.append(writer)  # never answered, closed at the end of the test
            return
        status, body = {
            "garbage": (200, b"\x00\xffnot bencode at all" * 20),
            "500": (500, b"internal error"),
            "failure": (200, bencode.encode({b"failure reason": b"<script>alert(1)</script> go away"})),
            "ok": (
                200,
                bencode.encode({b"interval": 1, b"peers": b"".join(encode_peer(p) for p in self.peers)}),
            ),
        }[mode]
        writer.write(
            b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (status, len(body), body)
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeTracker]:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        try:
            yield self
        finally:
            for w in self._hung:
                w.close()
            self.server.close()
            await self.server.wait_closed()


def _payload(root: Path, trackers: list[str]) -> tuple[Path, Path, Metainfo]:
    src = make_payload(root / "src" / "payload", SPEC, seed=5)
    data = make_torrent(src, piece_length=PIECE, trackers=trackers)
    torrent = root / "payload.torrent"
    torrent.write_bytes(data)
    return src, torrent, Metainfo.from_bytes(data)


async def test_tracker_hangs_then_garbage_then_recovers(tmp_path: Path) -> None:
    tracker = FakeTracker()
    async with tracker.running():
        src, torrent, _ = _payload(tmp_path, [tracker.url])
        async with seeder(torrent, src) as (_, _, addr):
            tracker.peers = [addr]
            async with Session(FAST, listen=("127.0.0.1", 0)) as session:
                h = await session.add(torrent, save_path=tmp_path / "out")
                for mode in ("hang", "garbage", "500", "failure"):
                    tracker.mode = mode
                    before = tracker.requests.get(mode, 0)
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + 30
                    while tracker.requests.get(mode, 0) < before + 2:  # two attempts: it keeps retrying
                        assert loop.time() < deadline, f"no retry while the tracker answers {mode}"
                        await asyncio.sleep(0.05)
                    st = h.status()
                    assert st.state is TorrentState.DOWNLOADING and st.error is None, (mode, st)
                    assert st.pieces_have == 0
                tracker.mode = "ok"
                await h.wait_complete(timeout=60)
    assert same_tree(src, tmp_path / "out" / src.name)


async def test_tracker_failure_is_reported_as_an_alert(tmp_path: Path) -> None:
    tracker = FakeTracker()
    tracker.mode = "failure"
    async with tracker.running():
        _, torrent, _ = _payload(tmp_path, [tracker.url])
        async with Session(FAST, listen=("127.0.0.1", 0)) as session:
            await session.add(torrent, save_path=tmp_path / "out")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while tracker.requests.get("failure", 0) < 2 and loop.time() < deadline:
                await asyncio.sleep(0.05)
            failures = [a for a in session.alerts().pop_all() if isinstance(a, al.TrackerFailed)]
    assert failures and any("go away" in a.error for a in failures)
    assert all("<script>" not in a.error or a.error.isprintable() for a in failures)


async def test_dead_tracker_does_not_block_direct_peers(tmp_path: Path) -> None:
    tracker = FakeTracker()  # hangs for the whole test
    async with tracker.running():
        src, torrent, _ = _payload(tmp_path, [tracker.url])
        async with seeder(torrent, src) as (_, _, addr), Session(FAST, listen=("127.0.0.1", 0)) as session:
            h = await session.add(torrent, save_path=tmp_path / "out", peers=[addr])
            await h.wait_complete(timeout=60)
    assert same_tree(src, tmp_path / "out" / src.name)


@contextlib.asynccontextmanager
async def partial_seeder(torrent: Path, src: Path, root: Path, keep: int) -> AsyncIterator[PeerAddr]:
    """A seeder that has only the first ``keep`` bytes of a.bin (the rest zeroed), so it holds some pieces."""
    data = root / src.name
    shutil.copytree(src, data)
    blob = bytearray((data / "a.bin").read_bytes())
    blob[keep:] = bytes(len(blob) - keep)
    (data / "a.bin").write_bytes(bytes(blob))
    (data / "sub" / "b.bin").unlink()
    async with Session(FAST, listen=("127.0.0.1", 0)) as session:
        h = await session.add(torrent, save_path=root, data_name=src.name, force_recheck=True, seed=True)
        await wait_status(h, lambda s: s.state is TorrentState.DOWNLOADING, 60, "the partial seeder's check")
        yield PeerAddr("127.0.0.1", session.listen_port)


async def test_all_peers_leave_mid_download_and_a_new_one_arrives(tmp_path: Path) -> None:
    src, torrent, meta = _payload(tmp_path, [])
    half = 1_000_000
    async with Session(FAST, listen=("127.0.0.1", 0)) as session:
        async with (
            partial_seeder(torrent, src, tmp_path / "p1", half) as a,
            partial_seeder(torrent, src, tmp_path / "p2", half) as b,
        ):
            h = await session.add(torrent, save_path=tmp_path / "out", peers=[a, b])
            expected = half // PIECE
            await wait_status(h, lambda s: s.pieces_have >= expected, 60, "the first half")
        # both peers are gone now
        await wait_status(h, lambda s: s.peers == 0, 30, "the peers to be gone")
        await asyncio.sleep(1.0)  # a few ticks with nobody to talk to
        st = h.status()
        assert st.state is TorrentState.DOWNLOADING and st.error is None, st
        assert expected <= st.pieces_have < st.pieces_total
        assert not bad_pieces(tmp_path / "out", meta, set(h._task.have))
        async with seeder(torrent, src) as (_, _, full):
            h.add_peer(full)
            await h.wait_complete(timeout=60)
    assert same_tree(src, tmp_path / "out" / src.name)


class FlakyLink:
    """A TCP relay to ``target`` that adds latency and cuts every connection after a random number of bytes, so
    peers vanish in the middle of pieces (case 50c); seeded, so a failure is reproducible."""

    def __init__(self, target: PeerAddr, seed: int) -> None:
        self.target = target
        self.rng = random.Random(seed)
        self.cuts = 0
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def addr(self) -> PeerAddr:
        assert self.server is not None
        return PeerAddr("127.0.0.1", self.server.sockets[0].getsockname()[1])

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, budget: list[int]
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
            while budget[0] > 0:
                data = await reader.read(min(8192, budget[0]))
                if not data:
                    break
                budget[0] -= len(data)
                await asyncio.sleep(self.rng.uniform(0.001, 0.01))
                writer.write(data)
                await writer.drain()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_w: asyncio.StreamWriter | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            up_r, up_w = await asyncio.wait_for(
                asyncio.open_connection(self.target.host, self.target.port), 10
            )
            budget = [self.rng.randint(100_000, 600_000)]
            tasks = [
                asyncio.ensure_future(self._pipe(reader, up_w, [1 << 30])),
                asyncio.ensure_future(self._pipe(up_r, writer, budget)),
            ]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if budget[0] <= 0:
                self.cuts += 1
        except (OSError, TimeoutError):
            pass
        finally:
            for t in tasks:
                t.cancel()
            for w in (writer, up_w):
                if w is not None:
                    w.close()

    def _spawn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FlakyLink]:
        self.server = await asyncio.start_server(self._spawn, "127.0.0.1", 0)
        try:
            yield self
        finally:
            self.server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.server.wait_closed()


@pytest.mark.parametrize("seed", [1])
async def test_peers_cut_mid_piece_with_latency_still_complete(tmp_path: Path, seed: int) -> None:
    src, torrent, _ = _payload(tmp_path, [])
    async with seeder(torrent, src) as (_, _, addr), FlakyLink(addr, seed).running() as link:
        async with Session(FAST, listen=("127.0.0.1", 0)) as session:
            h = await session.add(torrent, save_path=tmp_path / "out", peers=[link.addr])
            await h.wait_complete(timeout=90)
            assert h.stats.get("hash_failures", 0) == 0
        assert link.cuts >= 3, f"the link was cut only {link.cuts} times"
    assert same_tree(src, tmp_path / "out" / src.name)


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1 (made with the openssl command line)."""
    openssl = require_binary("openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


async def test_https_tracker_with_untrusted_certificate_fails_visibly(
    tmp_path: Path, self_signed: tuple[Path, Path]
) -> None:
    """Case 48: an HTTPS tracker whose certificate nobody vouches for is refused (no silent fallback to trusting
    it), the failure is a TrackerFailed alert, and the torrent itself is not in error."""
    cert, key = self_signed
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    tracker = FakeTracker()
    tracker.mode = "ok"
    tracker.server = await asyncio.start_server(tracker._handle, "127.0.0.1", 0, ssl=ctx)
    try:
        url = tracker.url.replace("http://", "https://")
        _, torrent, _ = _payload(tmp_path, [url])
        async with Session(FAST, listen=("127.0.0.1", 0)) as session:
            h = await session.add(torrent, save_path=tmp_path / "out")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            failures: list[al.TrackerFailed] = []
            while not failures:
                assert loop.time() < deadline, "no TrackerFailed alert for an untrusted certificate"
                failures += [a for a in session.alerts().pop_all() if isinstance(a, al.TrackerFailed)]
                await asyncio.sleep(0.05)
            assert "certificate" in failures[0].error.lower(), failures[0].error
            assert tracker.requests.get("ok", 0) == 0, (
                "the tracker got a request over an untrusted connection"
            )
            st = h.status()
            assert st.state is TorrentState.DOWNLOADING and st.error is None, st
    finally:
        tracker.server.close()
        await tracker.server.wait_closed()


@pytest.mark.parametrize("kind", ["gzip_bomb", "huge", "drip", "status_500", "garbage"])
async def test_torrent_url_serving_hostile_answers(tmp_path: Path, kind: str) -> None:
    """``shoal get URL``: a server answering a gzip bomb (50 MB from 50 KB), an endless body, one byte a second, an
    HTTP 500 or garbage. Each is a ShoalError from ``Session.add`` within the time-out, memory stays near the
    ``max_torrent_size`` cap, and the session keeps working."""
    import gzip

    bomb = gzip.compress(bytes(50 * 1024 * 1024), compresslevel=9)

    handlers: list[tuple[asyncio.Task[object], asyncio.StreamWriter]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append((task, writer))
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await reader.readuntil(b"\r\n\r\n")
            if kind == "gzip_bomb":
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
                )
                writer.write(bomb)
            elif kind == "huge":
                writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
                for _ in range(200):
                    writer.write(b"d" * 65536)
                    await writer.drain()
            elif kind == "drip":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                for _ in range(100):
                    writer.write(b"d")
                    await writer.drain()
                    await asyncio.sleep(1)
            elif kind == "status_500":
                writer.write(b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\noops")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nnot a torr")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x.torrent"
    settings = FAST.with_(max_torrent_size=1024 * 1024)
    try:
        async with Session(settings, listen=("127.0.0.1", 0)) as session:
            with pytest.raises(ShoalError):
                await asyncio.wait_for(session.add(url, save_path=tmp_path / "out"), 20)
            assert session.torrents() == []
    finally:
        server.close()
        for (
            task,
            writer,
        ) in handlers:  # a drip-feeding handler is still sleeping: stop it and close its socket
            task.cancel()
            writer.close()
        await asyncio.gather(*(t for t, _ in handlers), return_exceptions=True)
        await server.wait_closed()
