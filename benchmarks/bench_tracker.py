"""Benchmark: announces per second, `shoal tracker` against opentracker, same load generator, same run.

Usage::

    .venv/bin/python benchmarks/bench_tracker.py [--seconds 10] [--rounds 2] [--hashes 1000] [--connections 50]

* HTTP: ``wrk -t2 -cN`` with a Lua script that sends ``GET /announce`` with a random info-hash out of
  ``--hashes`` (all on opentracker's allow-list), a random peer id and port, ``compact=1``. wrk keeps
  connections alive; opentracker closes after every answer, so it is also measured with ``Connection: close``
  sent to both trackers (wrk then reconnects for every request, like clients do with opentracker).
* UDP: a Python generator (one process) keeping ``--window`` transactions in flight; each transaction is a
  fresh connect followed by an announce; the figure is completed connect+announce pairs per second.

Both trackers run as their own process on 127.0.0.1; Shoal runs with ``--ip-rate 0`` (the per-IP limit would
otherwise throttle a generator that is one IP) and uvloop when installed. In each round every load is run against
every tracker back to back (paired, so background load hits both alike); the table gives median rates and the
median (and range) of the per-round ratios. Prints a Markdown table for docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LUA = """
math.randomseed(os.time())
local hashes = {}
for line in io.lines("%(hashes)s") do hashes[#hashes + 1] = line end
local function enc(hex)
  return (hex:gsub("..", function(b) return "%%" .. b end))
end
local close = %(close)s
request = function()
  local ih = hashes[math.random(#hashes)]
  local pid = string.format("%%040x", math.random(0, 2147483647)):sub(1, 40)
  local port = math.random(1024, 65535)
  local left = math.random(0, 1)
  local path = "/announce?info_hash=" .. enc(ih) .. "&peer_id=" .. enc(pid) .. "&port=" .. port ..
    "&uploaded=0&downloaded=0&left=" .. left .. "&compact=1&numwant=50"
  if close then
    return wrk.format("GET", path, {["Connection"] = "close"})
  end
  return wrk.format("GET", path)
end
"""


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def wait_tcp(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def start_opentracker(workdir: Path, hashes: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    (workdir / "allow.txt").write_text("\n".join(hashes) + "\n")
    port = free_port()
    binary = shutil.which("opentracker") or "opentracker"
    cmd = [
        binary,
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-P",
        str(port),
        "-w",
        "allow.txt",
        "-d",
        str(workdir),
        "-u",
        "nobody",
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_tcp(port)
    return p, port


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_tcp(port)
    return p, f"redis://127.0.0.1:{port}/0"


def start_shoal_group(extra: list[str], n: int, redis_url: str) -> tuple[list[subprocess.Popen[bytes]], int]:
    """``n`` tracker processes on one port (SO_REUSEPORT) sharing swarms through Redis."""
    port = free_port()
    procs = []
    for _ in range(n):
        p, _ = start_shoal([*extra, "--reuse-port", "--redis", redis_url], port=port)
        procs.append(p)
    return procs, port


def start_shoal(extra: list[str], port: int | None = None) -> tuple[subprocess.Popen[bytes], int]:
    port = port or free_port()
    cmd = [
        sys.executable,
        "-m",
        "shoal",
        "tracker",
        "--http",
        f"127.0.0.1:{port}",
        "--udp",
        f"127.0.0.1:{port}",
        "--ip-rate",
        "0",
        "--max-connections-per-ip",
        "4096",
        "--max-connections",
        "8192",
        *extra,
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_tcp(port)
    return p, port


def stop(p: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(p.pid, 15)
        p.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(p.pid, 9)
        except ProcessLookupError:
            pass
        p.wait(timeout=10)


def run_wrk(port: int, script: Path, seconds: float, connections: int) -> float:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/announce",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    ).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"wrk printed no rate: {out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"  (wrk: {errors.group(1)} non-2xx answers)", file=sys.stderr)
    return float(m.group(1))


def run_udp(port: int, hashes: list[bytes], seconds: float, window: int) -> float:
    """Connect+announce pairs per second with ``window`` transactions in flight."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    rng = random.Random(1)
    pending: dict[int, tuple[int, float]] = {}  # tid -> (stage, sent_at); stage 0 = connect, 1 = announce
    done = 0
    lost = [0]
    connect = struct.Struct(">qii")
    announce = struct.Struct(">qii20s20sqqqiIIiH")

    def new() -> None:
        tid = rng.getrandbits(31)
        pending[tid] = (0, time.monotonic())
        sock.send(connect.pack(0x41727101980, 0, tid))

    end = time.monotonic() + seconds
    for _ in range(window):
        new()
    while True:
        now = time.monotonic()
        if now >= end:
            break
        r, _, _ = select.select([sock], [], [], 0.05)
        if not r:
            for tid, (_, sent) in list(pending.items()):  # lost: start afresh
                if now - sent > 1.0:
                    del pending[tid]
                    lost[0] += 1
                    new()
            continue
        while True:
            try:
                data = sock.recv(2048)
            except BlockingIOError:
                break
            if len(data) < 8:
                continue
            action, tid = struct.unpack_from(">ii", data)
            entry = pending.pop(tid, None)
            if entry is None:
                continue
            if action == 0 and entry[0] == 0 and len(data) >= 16:
                cid = struct.unpack_from(">q", data, 8)[0]
                tid2 = rng.getrandbits(31)
                pending[tid2] = (1, time.monotonic())
                pkt = announce.pack(
                    cid,
                    1,
                    tid2,
                    rng.choice(hashes),
                    rng.randbytes(20),
                    0,
                    rng.randint(0, 1),
                    0,
                    2,
                    0,
                    0,
                    50,
                    rng.randint(1024, 65535),
                )
                sock.send(pkt)
            elif action == 1 and entry[0] == 1:
                done += 1
                new()
            else:
                new()
    sock.close()
    if lost[0]:
        print(f"  (udp generator: {lost[0]} transactions lost and restarted)", file=sys.stderr)
    return done / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--hashes", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--no-uvloop", action="store_true", help="run shoal tracker on the default asyncio loop")
    ap.add_argument(
        "--processes",
        type=int,
        default=0,
        help="also measure N shoal processes (SO_REUSEPORT + redis-server)",
    )
    args = ap.parse_args()
    if not shutil.which("wrk") or not shutil.which("opentracker"):
        print("needs wrk and opentracker (apt-get install wrk opentracker)", file=sys.stderr)
        return 2
    rng = random.Random(5)
    hashes = [rng.randbytes(20) for _ in range(args.hashes)]
    hexes = [h.hex() for h in hashes]
    with tempfile.TemporaryDirectory(prefix="bench-tracker-") as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "hashes.txt").write_text("\n".join(hexes) + "\n")
        scripts = {}
        for mode, close in (("keep-alive", "false"), ("close", "true")):
            scripts[mode] = tmp / f"{mode}.lua"
            scripts[mode].write_text(LUA % {"hashes": tmp / "hashes.txt", "close": close})
        extra = ["--no-uvloop"] if args.no_uvloop else []
        trackers = {
            "opentracker": lambda: start_opentracker(tmp / "ot", hexes),
            "shoal": lambda: start_shoal(extra),
        }
        group: dict[str, object] = {}
        if args.processes:
            redis_proc, redis_url = start_redis(tmp)
            group["redis"] = redis_proc
            trackers[f"shoal x{args.processes} +redis"] = lambda: start_shoal_group(
                extra, args.processes, redis_url
            )
        loads = ["HTTP (keep-alive)", "HTTP (close)", "UDP (connect+announce pairs)"]
        per_round: dict[tuple[str, str], list[float]] = {}
        for rnd in range(args.rounds):
            running: dict[str, tuple[list[subprocess.Popen[bytes]], int]] = {}
            try:
                for name, starter in trackers.items():
                    started = starter()
                    procs = started[0] if isinstance(started[0], list) else [started[0]]
                    running[name] = (procs, started[1])
                for load in loads:  # each load hits every tracker back to back: paired measurements
                    for name, (_, port) in running.items():
                        if load == loads[2]:
                            rate = run_udp(port, hashes, args.seconds, args.window)
                        else:
                            mode = "keep-alive" if "keep-alive" in load else "close"
                            rate = run_wrk(port, scripts[mode], args.seconds, args.connections)
                        per_round.setdefault((name, load), []).append(rate)
                        print(f"round {rnd + 1} {name} {load}: {rate:,.0f}/s", file=sys.stderr)
            finally:
                for procs, _ in running.values():
                    for p in procs:
                        stop(p)
        if "redis" in group:
            stop(group["redis"])  # type: ignore[arg-type]
    names = list(trackers)
    print(
        "| load | "
        + " | ".join(f"{n} /s" for n in names)
        + " | "
        + " | ".join(f"{n} / opentracker (median, range)" for n in names[1:])
        + " |"
    )
    print("|---" * (1 + len(names) + len(names) - 1) + "|")
    for load in loads:
        ot = per_round[("opentracker", load)]
        rates = " | ".join(f"{statistics.median(per_round[(n, load)]):,.0f}" for n in names)
        cells = []
        for n in names[1:]:
            ratios = [a / b for a, b in zip(per_round[(n, load)], ot, strict=True)]
            cells.append(f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")
        print(f"| {load} | {rates} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
