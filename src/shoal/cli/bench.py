"""``shoal bench CASE``: benchmarks against reference peers, measured in the same run.

Cases (issue 7), each printing a table of MB/s, CPU seconds, peak RSS and the Shoal/reference ratio:

* ``download``  one libtorrent seeder -> Shoal downloading vs libtorrent downloading;
* ``seed``      Shoal seeding -> libtorrent vs libtorrent seeding -> libtorrent;
* ``swarm``     four libtorrent seeders -> Shoal vs libtorrent downloading;
* ``idle``      500 idle and 100 active peer connections, and 1,000 torrents in one session: RSS and CPU;
* ``all``       download, seed, swarm and idle in turn;
* ``create``, ``check`` (a full re-check), ``tracker``, ``wire``: the benchmarks of those areas
  (``benchmarks/bench_<case>.py``, run as a script; ``--bench-args "..."`` passes arguments to it).

The benchmark code lives in ``benchmarks/`` of a source checkout and starts the reference peers through the
interop harness (``tests/interop/harness``); it needs the libtorrent bindings from the test extra.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from shoal.errors import ConfigError

OWN = {
    "download": "bench_transfer",
    "seed": "bench_transfer",
    "swarm": "bench_transfer",
    "idle": "bench_scale",
}
OTHERS = ("create", "check", "tracker", "wire")
CASES = (*OWN, "all", *OTHERS)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("case", choices=CASES, help="which benchmark")
    parser.add_argument("--size", default="1G", help="data size for transfers (default 1G; e.g. 256M)")
    parser.add_argument("--runs", type=int, default=1, help="repetitions per peer; the median is reported")
    parser.add_argument(
        "--workdir", type=Path, default=Path("/tmp/shoal-bench"), help="content cache and scratch folder"
    )
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument(
        "--shoal-via",
        choices=["cli", "api"],
        default="cli",
        help="run Shoal as `shoal get`/`shoal seed` (default) or through the Session API in a subprocess",
    )
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio"],
        default="auto",
        help="with --shoal-via api: auto (uvloop) or asyncio",
    )
    parser.add_argument(
        "--bench-args",
        default="",
        metavar="ARGS",
        help="arguments for the create/check/tracker/wire benchmarks (quoted)",
    )


def checkout_root() -> Path:
    """The source checkout holding ``benchmarks/`` (this file's repository, else the current folder)."""
    for root in (Path(__file__).resolve().parents[3], Path.cwd()):
        if (root / "benchmarks" / "__init__.py").exists() and (
            root / "tests" / "interop" / "harness"
        ).exists():
            return root
    raise ConfigError("shoal bench needs a source checkout with benchmarks/ and tests/interop/harness/")


def run(args: argparse.Namespace) -> int:
    root = checkout_root()
    if args.case in OTHERS:
        script = root / "benchmarks" / f"bench_{args.case}.py"
        if not script.exists():
            raise ConfigError(f"benchmark {args.case!r} is not in this checkout ({script} missing)")
        extra = shlex.split(args.bench_args)
        return subprocess.run([sys.executable, str(script), *extra], cwd=root, check=False).returncode
    if importlib.util.find_spec("libtorrent") is None:
        raise ConfigError("shoal bench needs the libtorrent bindings: pip install -e '.[test]'")
    if args.runs < 1:
        raise ConfigError(f"--runs {args.runs} must be at least 1")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    logging.getLogger("benchmarks").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(message)s")
    common: Any = importlib.import_module("benchmarks.common")
    try:
        size = int(common.parse_size(args.size))
    except ValueError as exc:
        raise ConfigError(str(exc))
    cases = ["download", "seed", "swarm", "idle"] if args.case == "all" else [args.case]
    print(f"machine: {common.machine_line()}", flush=True)
    for case in cases:
        module: Any = importlib.import_module(f"benchmarks.{OWN[case]}")
        tables = module.run(
            case, size=size, runs=args.runs, workdir=args.workdir, shoal_via=args.shoal_via, loop=args.loop
        )
        for table in tables:
            print(table.render(markdown=args.markdown) + "\n", flush=True)
    return 0
