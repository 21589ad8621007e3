"""The ``shoal`` command: a table of subcommands, and one place that turns errors into one line.

Each subcommand is a module ``shoal.cli.<name>`` with two functions:

* ``configure(parser: argparse.ArgumentParser) -> None`` adds its arguments;
* ``run(args: argparse.Namespace) -> int`` does the work and returns the exit code (it may use
  ``asyncio.run`` inside).

Modules are imported lazily, so ``shoal info`` does not pay for aiohttp.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from shoal.errors import ShoalError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "create": ("shoal.cli.create", "make a .torrent file from a file or folder"),
    "info": ("shoal.cli.info", "show what a .torrent file or magnet link describes"),
    "get": ("shoal.cli.get", "download a torrent, magnet link or URL"),
    "seed": ("shoal.cli.seed", "seed a torrent from data already on disk"),
    "check": ("shoal.cli.check", "re-hash downloaded data against its torrent"),
    "demo": ("shoal.cli.demo", "a one-command tour: tracker, seeder and leechers on loopback"),
    "tracker": ("shoal.cli.tracker", "run an HTTP and UDP BitTorrent tracker"),
    "dht": ("shoal.cli.dht", "run a standalone DHT node and print its state"),
    "bench": ("shoal.cli.bench", "benchmarks against reference peers, measured in the same run"),
}
# commands that log nothing: they skip loading and configuring ``logging`` (start-up time) unless -v is given
SILENT = frozenset({"create", "info"})


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoal", description="Peer-to-peer file sharing over BitTorrent.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            p.set_defaults(_unavailable=name)
            continue
        module.configure(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in args_list if a in COMMANDS), None)
    parser = build_parser(only=chosen)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_unavailable", None):
        print(f"shoal: the '{args.command}' command is not available in this build", file=sys.stderr)
        return 2
    if args.verbose or args.command not in SILENT:
        import logging

        level = logging.WARNING - 10 * min(args.verbose, 2)
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args._module.run(args))
    except ShoalError as exc:
        print(f"shoal: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("shoal: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
