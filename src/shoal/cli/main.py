"""The ``shoal`` command: a table of subcommands, and one place that turns errors into one line.

Each subcommand is a module ``shoal.cli.<name>`` with two functions:

* ``configure(parser: argparse.ArgumentParser) -> None`` adds its arguments;
* ``run(args: argparse.Namespace) -> int`` does the work and returns the exit code (it may use
  ``asyncio.run`` inside).

Modules are imported lazily, so ``shoal info`` does not pay for aiohttp; only the chosen command's parser is
built. ``console`` is the program's entry point (the ``shoal`` script, ``python -m shoal``); ``main`` is the same
without ending the process, for tests and embedding.
"""

from __future__ import annotations

import argparse
import importlib
import os
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
# one-shot commands after which the process ends at once (``os._exit``, output flushed): see ``console``
FAST_EXIT = frozenset({"create"})


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, sized without loading ``shutil`` (argparse makes one per ``add_argument``, and
    ``shutil`` with ``bz2`` and ``lzma`` is ~2 ms of a ~35 ms ``shoal create`` start)."""

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, terminal_columns() - 2 if width is None else width
        )


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: $COLUMNS, else the terminal on stdout, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    stdout = sys.__stdout__
    try:
        return (os.get_terminal_size(stdout.fileno()).columns if stdout is not None else 0) or 80
    except (ValueError, OSError):  # closed, detached, or not a terminal
        return 80


def chosen_command(args: Sequence[str]) -> str | None:
    """The command named on a command line (the first argument that is one), if any."""
    return next((a for a in args if a in COMMANDS), None)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that command's sub-parser (``shoal create`` does not build eight others)."""
    parser = argparse.ArgumentParser(
        prog="shoal", description="Peer-to-peer file sharing over BitTorrent.", formatter_class=HelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
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
    parser = build_parser(only=chosen_command(args_list))
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


def console() -> None:
    """The ``shoal`` program: :func:`main`, then the exit. After a command of :data:`FAST_EXIT` (without ``-v``:
    logging flushes at exit) the process ends at once once stdout and stderr are flushed: Python's own clean-up at
    exit (module teardown, a last garbage collection) took 5-8 ms of a ``shoal create``, and there is nothing left
    to clean up (its files are closed, its hashing processes reaped)."""
    code = main()
    if chosen_command(sys.argv[1:]) in FAST_EXIT and "logging" not in sys.modules:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a closed pipe: what Python's own exit would have reported
            code = code or 1
        os._exit(code)
    raise SystemExit(code)


if __name__ == "__main__":
    console()
