"""A torrent's name comes from whoever made it: `shoal get` and `shoal seed` print it as it is, never as rich markup.

Before, the summary went through rich's markup (``[bold]``, ``[red]`` vanished from names) and the progress row
parsed the name as markup too (a row label with an unmatched ``[/]`` raised MarkupError while drawing).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from shoal.cli._progress import make_progress
from shoal.cli.main import main
from swarm_helpers import make_payload, make_torrent, shoal_seed

HOSTILE_NAME = "[bold]x[red] y [link=https]z"  # a path component: no "/", so no closing tag


def test_get_prints_a_markup_name_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_payload(tmp_path / "src" / HOSTILE_NAME, [("a.bin", 300_000), ("b.bin", 1000)])
    torrent = tmp_path / "t.torrent"
    torrent.write_bytes(make_torrent(src, piece_length=64 * 1024))
    with shoal_seed(torrent, src, tmp_path / "seed") as proc:
        port = proc.port()
        out = tmp_path / "out"
        argv = ["get", str(torrent), "-o", str(out), "--no-seed", "--port", "0", "--timeout", "60"]
        code = main([*argv, "--peer", f"127.0.0.1:{port}"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"{HOSTILE_NAME}: complete" in printed
    assert (out / HOSTILE_NAME / "a.bin").read_bytes() == (src / "a.bin").read_bytes()


def test_progress_row_shows_a_markup_name_as_it_is() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=200, markup=False, color_system=None)
    progress = make_progress(console)
    fields = {"state": "downloading", "down": "1 MiB/s", "up": "0 B/s", "peers": 1, "eta": "00:01"}
    progress.add_task(HOSTILE_NAME[:14], total=1000, **fields)
    progress.add_task(
        "[/][/]", total=1000, **fields
    )  # a closing tag with nothing to close: MarkupError before
    console.print(progress.get_renderable())
    console.print(f"{HOSTILE_NAME}: complete")
    text = buf.getvalue()
    assert HOSTILE_NAME[:14] in text and "[/][/]" in text
    assert f"{HOSTILE_NAME}: complete" in text
