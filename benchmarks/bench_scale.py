"""Scale benchmarks (issue 7 cases 5-6): many peer connections and many torrents, Shoal against libtorrent.

``idle`` runs two sub-cases against each peer (libtorrent via ``lt_runner``, Shoal via ``shoal_runner``), each a
separate process seeding on 127.0.0.1:

* **connections**: the peer seeds one 64 MiB torrent (1 MiB pieces). A load generator in this process opens
  500 idle connections (handshake, then nothing; each from its own 127.0.0.x source address), waits, then opens
  100 active ones that declare interest and, once unchoked, each request one 16 KiB block every 100 ms
  (16 MB/s in all). Reported: RSS growth per idle connection, CPU per idle connection, RSS per active
  connection, CPU per active connection, blocks served. Connection limits and upload slots are raised on both
  peers so neither refuses or chokes the load (libtorrent: connections_limit 2000, unchoke_slots_limit -1;
  Shoal: max_peers_* 2000, max_connections_per_ip 2000, upload_slots 200).
* **torrents**: 1,000 single-file torrents (64 KiB each, 16 KiB pieces) loaded as seeds in one session:
  start-up time until all are seeding, RSS, and RSS per torrent over a one-torrent session.

Run: ``shoal bench idle [--loop asyncio]`` or ``python -m benchmarks.bench_scale [--loop asyncio]``; Shoal runs
through the Session API (``benchmarks.shoal_runner``) on uvloop when installed, or on asyncio's loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.bench_create import child_env
from benchmarks.common import MeasuredProcess, single_file_content
from interop.harness import content
from interop.harness.libtorrent_peer import runner_command

logger = logging.getLogger("benchmarks.scale")

LT = "libtorrent"
SHOAL = "shoal"
IDLE = 500
ACTIVE = 100
WINDOW = 10.0  # seconds of measurement per phase
N_TORRENTS = 1000
BLOCK = 16 * 1024


# -- load generator ------------------------------------------------------------------------------------------
@dataclass
class Load:
    port: int
    info_hash: bytes
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    handshaken: int = 0
    refused: int = 0
    unchoked: int = 0
    blocks: int = 0
    num_pieces: int = 1
    piece_length: int = 1 << 20


def handshake(info_hash: bytes, n: int) -> bytes:
    peer_id = b"-XB0001-" + f"{n:012d}".encode()
    return b"\x13BitTorrent protocol" + bytes(8) + info_hash + peer_id


async def _connect(load: Load, n: int, *, active: bool, interval: float) -> None:
    src = f"127.0.{1 + n // 250}.{2 + n % 250}"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", load.port, local_addr=(src, 0)), 30
        )
        writer.write(handshake(load.info_hash, n))
        hs = await asyncio.wait_for(reader.readexactly(68), 30)
        if hs[28:48] != load.info_hash:
            raise ConnectionError("wrong info-hash")
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        load.refused += 1
        return
    load.handshaken += 1
    load.writers.append(writer)
    if active:
        writer.write(struct.pack(">IB", 1, 2))  # interested
    unchoked = asyncio.Event()
    requester = None
    try:
        while True:
            head = await reader.readexactly(4)
            (length,) = struct.unpack(">I", head)
            if length == 0:
                continue
            body = await reader.readexactly(length)
            mid = body[0]
            if mid == 1 and active and not unchoked.is_set():  # unchoke
                unchoked.set()
                load.unchoked += 1
                requester = asyncio.create_task(_request_loop(load, writer, n, interval))
            elif mid == 7:
                load.blocks += 1
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        if requester is not None:
            requester.cancel()


async def _request_loop(load: Load, writer: asyncio.StreamWriter, n: int, interval: float) -> None:
    i = n * 7
    while True:
        piece = i % load.num_pieces
        begin = (i // load.num_pieces * BLOCK) % load.piece_length
        writer.write(struct.pack(">IBIII", 13, 6, piece, begin, BLOCK))
        i += 1
        await asyncio.sleep(interval)


async def open_connections(load: Load, count: int, first: int, *, active: bool, timeout: float = 60) -> None:
    for n in range(first, first + count):
        load.tasks.append(asyncio.create_task(_connect(load, n, active=active, interval=0.1)))
        if n % 10 == 9:
            await asyncio.sleep(0.02)  # libtorrent's listen backlog is small (listen_queue_size 5)
    deadline = time.monotonic() + timeout
    while load.handshaken + load.refused < first + count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def close_load(load: Load) -> None:
    for t in load.tasks:
        t.cancel()
    await asyncio.gather(*load.tasks, return_exceptions=True)
    for w in load.writers:
        with contextlib.suppress(Exception):
            w.close()


# -- peers ---------------------------------------------------------------------------------------------------
LOOP = {"loop": "auto"}  # event loop of the Shoal runner: "auto" (uvloop when installed) or "asyncio"


def peer_command(kind: str, mode: str, torrent: Path, save: Path) -> list[str]:
    if kind == LT:
        return runner_command(mode, torrent, save, timeout=900, connections_limit=2000, unchoke_slots=-1)
    cmd = [sys.executable, "-m", "benchmarks.shoal_runner", mode, str(torrent), str(save), "--timeout", "900"]
    cmd += ["--loop", LOOP["loop"]]
    for s in (
        "max_peers_per_torrent=2000",
        "max_peers_global=2000",
        "max_connections_per_ip=2000",
        "upload_slots=200",
    ):
        cmd += ["--set", s]
    return cmd


@dataclass
class ConnResult:
    idle_rss_kib: float = 0.0
    idle_anon_kib: float = 0.0
    idle_cpu_us: float = 0.0  # CPU microseconds per second per idle connection
    active_rss_kib: float = 0.0
    active_cpu_ms: float = 0.0  # CPU milliseconds per second per active connection
    base_rss_mib: float = 0.0
    idle_ok: int = 0
    active_unchoked: int = 0
    blocks: int = 0
    error: str = ""


def measure_connections(kind: str, workdir: Path) -> ConnResult:
    bc = single_file_content(workdir, 64 << 20)
    res = ConnResult()
    logdir = workdir / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    cmd = peer_command(kind, "seed", bc.torrent.path, bc.data.parent)
    with MeasuredProcess(f"{kind} seeder", cmd, log_path=logdir / f"{kind}-conns.log", env=child_env()) as mp:
        port = int(mp.wait_event("listening", timeout=60)["port"])
        if kind == SHOAL:
            mp.wait_event("ready", timeout=120)
        time.sleep(2)
        res.base_rss_mib = mp.rss_kib() / 1024
        rss0, anon0 = mp.rss_kib(), mp.anon_kib()
        load = Load(port, bytes.fromhex(bc.torrent.info_hash))
        load.num_pieces, load.piece_length = bc.torrent.num_pieces, bc.torrent.piece_length

        async def drive() -> None:
            try:
                logger.info("%s: opening %d idle connections", kind, IDLE)
                await open_connections(load, IDLE, 0, active=False)
                res.idle_ok = load.handshaken
                if res.idle_ok == 0:
                    raise RuntimeError(f"no connection handshaken ({load.refused} refused)")
                await asyncio.sleep(3)
                rss1, anon1 = mp.rss_kib(), mp.anon_kib()
                c1 = mp.cpu_now()
                await asyncio.sleep(WINDOW)
                c2 = mp.cpu_now()
                n = max(res.idle_ok, 1)
                res.idle_rss_kib = (rss1 - rss0) / n
                res.idle_anon_kib = (anon1 - anon0) / n
                res.idle_cpu_us = (c2 - c1) / WINDOW / n * 1e6
                logger.info("%s: %d idle connections, opening %d active", kind, res.idle_ok, ACTIVE)
                await open_connections(load, ACTIVE, IDLE, active=True)
                await asyncio.sleep(3)
                b1, c3, rss2 = load.blocks, mp.cpu_now(), mp.rss_kib()
                await asyncio.sleep(WINDOW)
                c4 = mp.cpu_now()
                res.active_unchoked = load.unchoked
                res.blocks = load.blocks - b1
                res.active_rss_kib = (rss2 - rss1) / ACTIVE
                res.active_cpu_ms = (c4 - c3) / WINDOW / ACTIVE * 1e3
            finally:
                await close_load(load)

        try:
            asyncio.run(drive())
        except (RuntimeError, TimeoutError, OSError) as exc:
            res.error = str(exc).splitlines()[0][:160]
    return res


STARTUPS = 5  # start-ups of the 1,000-torrent session per peer, alternating the peers; the median is reported


@dataclass
class TorrentsResult:
    startup_s: float = 0.0  # median of ``startups``
    startups: list[float] = field(default_factory=list)
    rss_one_mib: float = 0.0
    rss_many_mib: float = 0.0
    anon_many_mib: float = 0.0
    per_torrent_kib: float = 0.0
    error: str = ""


def many_torrents(workdir: Path, count: int) -> Path:
    """``count`` tiny single-file torrents in ``workdir/content/many-N/torrents`` (data in ``.../data``)."""
    base = workdir / "content" / f"many-{count}"
    tdir, ddir = base / "torrents", base / "data"
    if tdir.exists() and len(list(tdir.glob("*.torrent"))) == count:
        return base
    logger.info("making %d small torrents in %s", count, base)
    tdir.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        f = ddir / f"file{i:05d}.bin"
        content.write_random(f, 64 << 10, seed=100000 + i)
        content.make_torrent(f, tdir / f"t{i:05d}.torrent", piece_length=16 << 10)
    return base


def measure_torrents(kind: str, workdir: Path) -> TorrentsResult:
    res = TorrentsResult()
    logdir = workdir / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    many = many_torrents(workdir, N_TORRENTS)
    one = workdir / "content" / "one-torrent"
    one.mkdir(parents=True, exist_ok=True)
    first = next(iter(sorted((many / "torrents").glob("*.torrent"))))
    (one / first.name).write_bytes(first.read_bytes())
    try:
        for label, tdir in (("one", one), ("many", many / "torrents")):
            cmd = peer_command(kind, "many", tdir, many / "data")
            # bytecode caches allowed, as for any installed package (a sandbox's PYTHONDONTWRITEBYTECODE would make
            # every start of the Python runners compile their modules again)
            log = logdir / f"{kind}-{label}.log"
            with MeasuredProcess(f"{kind} {label}", cmd, log_path=log, env=child_env()) as mp:
                ev = mp.wait_event("ready", timeout=600)
                time.sleep(3)
                rss, anon = mp.rss_kib() / 1024, mp.anon_kib() / 1024
            if label == "one":
                res.rss_one_mib = rss
            else:
                res.startups.append(float(ev["seconds"]))
                res.rss_many_mib, res.anon_many_mib = rss, anon
        res.per_torrent_kib = (res.rss_many_mib - res.rss_one_mib) * 1024 / (N_TORRENTS - 1)
    except (RuntimeError, TimeoutError) as exc:
        res.error = str(exc).splitlines()[0][:160]
    return res


def measure_startup(kind: str, workdir: Path, res: TorrentsResult) -> None:
    """One more start-up of the 1,000-torrent session (no RSS wait): the machine is shared and a single start-up
    swings by 2x, so the peers take turns and the median counts."""
    many = many_torrents(workdir, N_TORRENTS)
    cmd = peer_command(kind, "many", many / "torrents", many / "data")
    log = workdir / "logs" / f"{kind}-many-startup.log"
    try:
        with MeasuredProcess(f"{kind} many", cmd, log_path=log, env=child_env()) as mp:
            res.startups.append(float(mp.wait_event("ready", timeout=600)["seconds"]))
    except (RuntimeError, TimeoutError) as exc:
        res.error = res.error or str(exc).splitlines()[0][:160]


# -- tables --------------------------------------------------------------------------------------------------
def _fmt(v: float, nd: int = 1) -> str:
    return f"{v:.{nd}f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def render(rows: list[list[str]], header: list[str], title: str, notes: list[str], markdown: bool) -> str:
    if markdown:
        lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += [""] + [f"- {n}" for n in notes] if notes else []
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(
        [title, fmt.format(*header), *(fmt.format(*r) for r in rows), *(f"  {n}" for n in notes)]
    )


@dataclass
class ScaleTable:
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str]

    def render(self, markdown: bool = False) -> str:
        return render(self.rows, self.header, self.title, self.notes, markdown)


def shoal_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("shoal.engine.session") is not None


def run(
    case: str = "idle",
    *,
    size: int = 0,
    runs: int = 1,
    workdir: Path = Path("/tmp/shoal-bench"),
    shoal_via: str = "api",
    loop: str = "auto",
) -> list[ScaleTable]:
    del size, runs, shoal_via  # fixed workloads; Shoal always through the Session API (settings)
    LOOP["loop"] = loop
    kinds = [LT, SHOAL] if shoal_available() else [LT]
    conns: dict[str, ConnResult] = {}
    tors: dict[str, TorrentsResult] = {}
    for k in kinds:
        try:
            conns[k] = measure_connections(k, workdir)
        except (RuntimeError, TimeoutError, OSError, ValueError) as exc:
            conns[k] = ConnResult(error=f"failed: {str(exc).splitlines()[0][:160]}")
        try:
            tors[k] = measure_torrents(k, workdir)
        except (RuntimeError, TimeoutError, OSError, ValueError) as exc:
            tors[k] = TorrentsResult(error=f"failed: {str(exc).splitlines()[0][:160]}")
    for _ in range(STARTUPS - 1):
        for k in kinds:
            if not tors[k].error:
                measure_startup(k, workdir, tors[k])
    for t in tors.values():
        t.startup_s = statistics.median(t.startups) if t.startups else 0.0
    header = [
        "",
        "RSS/idle conn KiB",
        "CPU/idle conn µs/s",
        "RSS/active conn KiB",
        "CPU/active conn ms/s",
        "base RSS MiB",
        "blocks served",
        "note",
    ]
    rows = []
    for k in [LT, SHOAL]:
        if k not in conns:
            rows.append([k, "-", "-", "-", "-", "-", "-", "shoal engine not available"])
            continue
        c = conns[k]
        note = c.error or f"{c.idle_ok}/{IDLE} idle, {c.active_unchoked}/{ACTIVE} active unchoked"
        rows.append(
            [
                k,
                _fmt(c.idle_rss_kib),
                _fmt(c.idle_cpu_us),
                _fmt(c.active_rss_kib),
                _fmt(c.active_cpu_ms, 2),
                _fmt(c.base_rss_mib),
                str(c.blocks),
                note,
            ]
        )
    if SHOAL in conns and LT in conns:
        a, b = conns[SHOAL], conns[LT]
        rows.append(
            [
                "ratio shoal/libtorrent",
                _ratio(a.idle_rss_kib, b.idle_rss_kib),
                _ratio(a.idle_cpu_us, b.idle_cpu_us),
                _ratio(a.active_rss_kib, b.active_rss_kib),
                _ratio(a.active_cpu_ms, b.active_cpu_ms),
                _ratio(a.base_rss_mib, b.base_rss_mib),
                _ratio(a.blocks, b.blocks),
                "",
            ]
        )
    t1 = ScaleTable(
        f"connections: {IDLE} idle then {ACTIVE} active peers (1 block / 100 ms each) on one seeding torrent",
        header,
        rows,
        [
            f"growth of the peer's VmRSS over its own baseline, divided by connections; CPU over {WINDOW:g} s windows"
        ],
    )
    header2 = [
        "",
        "start-up s",
        "RSS 1 torrent MiB",
        f"RSS {N_TORRENTS} MiB",
        f"anon {N_TORRENTS} MiB",
        "RSS/torrent KiB",
        "note",
    ]
    rows2 = []
    for k in [LT, SHOAL]:
        if k not in tors:
            rows2.append([k, "-", "-", "-", "-", "-", "shoal engine not available"])
            continue
        t = tors[k]
        rows2.append(
            [
                k,
                _fmt(t.startup_s, 2),
                _fmt(t.rss_one_mib),
                _fmt(t.rss_many_mib),
                _fmt(t.anon_many_mib),
                _fmt(t.per_torrent_kib),
                t.error or "start-ups " + " / ".join(f"{x:.2f}" for x in t.startups),
            ]
        )
    if SHOAL in tors and LT in tors:
        a2, b2 = tors[SHOAL], tors[LT]
        rows2.append(
            [
                "ratio shoal/libtorrent",
                _ratio(a2.startup_s, b2.startup_s),
                _ratio(a2.rss_one_mib, b2.rss_one_mib),
                _ratio(a2.rss_many_mib, b2.rss_many_mib),
                _ratio(a2.anon_many_mib, b2.anon_many_mib),
                _ratio(a2.per_torrent_kib, b2.per_torrent_kib),
                "",
            ]
        )
    t2 = ScaleTable(
        f"torrents: {N_TORRENTS} seeding torrents (64 KiB each) in one session",
        header2,
        rows2,
        [
            "start-up: process start until every torrent is checked and seeding, median of "
            f"{STARTUPS} (the peers take turns); RSS 3 s after the first"
        ],
    )
    return [t1, t2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_scale")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/shoal-bench"))
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--loop", choices=["auto", "asyncio"], default="auto")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for t in run(workdir=args.workdir, loop=args.loop):
        sys.stdout.write(t.render(markdown=args.markdown) + "\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
