"""``shoal info FILE.torrent|MAGNET [--json]``: what a torrent or magnet link describes."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from shoal.codec.magnet import Magnet, format_peer
from shoal.codec.metainfo import Metainfo
from shoal.config import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="FILE.torrent|MAGNET")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def load(target: str, settings: Settings) -> Metainfo | Magnet:
    if target.lower().startswith("magnet:"):
        return Magnet.parse(target, settings)
    from shoal.engine.sources import read_torrent_file  # bounded: /dev/zero or a FIFO is refused, not read

    return Metainfo.from_bytes(read_torrent_file(Path(target), settings.max_torrent_size), settings)


def describe_torrent(m: Metainfo) -> dict[str, Any]:
    info = m.info
    return {
        "name": info.name,
        "info_hash_v1": m.info_hash_v1.hex() if m.info_hash_v1 else None,
        "info_hash_v2": m.info_hash_v2.hex() if m.info_hash_v2 else None,
        "version": "hybrid" if info.is_hybrid else ("v2" if info.has_v2 else "v1"),
        "total_size": info.content_length,
        "piece_size": info.piece_length,
        "piece_count": info.num_pieces,
        "private": info.private,
        "source": info.source,
        "comment": m.comment,
        "created_by": m.created_by,
        "creation_date": m.creation_date,
        "trackers": m.trackers,
        "web_seeds": m.web_seeds,
        "files": [{"path": "/".join(f.path), "length": f.length} for f in info.files if not f.is_pad],
        "magnet": Magnet.from_metainfo(m).to_uri(),
    }


def describe_magnet(g: Magnet) -> dict[str, Any]:
    return {
        "name": g.display_name,
        "info_hash_v1": g.info_hash_v1.hex() if g.info_hash_v1 else None,
        "info_hash_v2": g.info_hash_v2.hex() if g.info_hash_v2 else None,
        "trackers": [[t] for t in g.trackers],
        "web_seeds": g.web_seeds,
        "peers": [format_peer(p) for p in g.peers],
        "select_only": None if g.select_only is None else [list(r) for r in g.select_only],
        "magnet": g.to_uri(),
    }


def _tree(files: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    shown: set[tuple[str, ...]] = set()
    for f in files:
        parts = tuple(f["path"].split("/"))
        for depth in range(len(parts) - 1):
            if parts[: depth + 1] not in shown:
                shown.add(parts[: depth + 1])
                lines.append("  " * (depth + 1) + parts[depth] + "/")
        lines.append("  " * len(parts) + f"{parts[-1]}  ({human(f['length'])})")
    return lines


def run(args: argparse.Namespace) -> int:
    item = load(args.target, Settings())
    d = describe_torrent(item) if isinstance(item, Metainfo) else describe_magnet(item)
    if args.json:
        sys.stdout.write(json.dumps(d, indent=2) + "\n")
        return 0
    out: list[str] = [f"name:          {d['name']}"]
    for key in ("info_hash_v1", "info_hash_v2"):
        if d[key]:
            out.append(f"info-hash {key[-2:]}:  {d[key]}")
    if isinstance(item, Metainfo):
        out.append(f"version:       {d['version']}")
        out.append(f"total size:    {human(d['total_size'])} ({d['total_size']} bytes)")
        out.append(f"pieces:        {d['piece_count']} x {human(d['piece_size'])}")
        out.append(f"private:       {'yes' if d['private'] else 'no'}")
        for key in ("source", "comment", "created_by"):
            if d[key]:
                out.append(f"{key.replace('_', ' ') + ':':<15}{d[key]}")
        if d["creation_date"] is not None:
            when = datetime.datetime.fromtimestamp(d["creation_date"], datetime.UTC).isoformat()
            out.append(f"created:       {when}")
    for i, tier in enumerate(d["trackers"]):
        out.append(f"tracker tier {i}: {', '.join(tier)}")
    for w in d["web_seeds"]:
        out.append(f"web seed:      {w}")
    if isinstance(item, Metainfo):
        out.append(f"files ({len(d['files'])}):")
        out += _tree(d["files"])
    else:
        for p in d["peers"]:
            out.append(f"peer:          {p}")
        if d["select_only"] is not None:
            out.append(f"select only:   {d['select_only']}")
    out.append(f"magnet:        {d['magnet']}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0
