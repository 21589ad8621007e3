"""Sample content for transfers, .torrent files made by libtorrent, and byte-for-byte tree comparison.

The default multi-file layout (``make_multifile``) covers the shapes that break clients:

* ``empty.txt``      0 bytes (Transmission 3.00 does not create it: compare with ``skip_empty=True`` there);
* ``small.txt``      smaller than one piece;
* ``big.bin``        spans many pieces and starts/ends in the middle of pieces;
* ``sub/dir/tail.bin`` in a nested folder; makes the total size not a multiple of the piece length, so the last
  piece is short (and not a power of two).

Bytes are pseudo-random from a seed, so content is reproducible and not compressible. The torrent is made with the
libtorrent bindings (v1 only by default: Transmission 3.00 and opentracker's allow-list want a v1 info-hash), so
the harness depends on no Shoal code.

Usage::

    from interop.harness import content

    src = content.make_multifile(tmp_path / "seed", total=4 << 20, piece_length=64 << 10)
    # src.path == tmp_path/"seed"/"sample" (the folder the torrent describes), src.parent == tmp_path/"seed"
    t = content.make_torrent(src.path, tmp_path / "sample.torrent", piece_length=64 << 10,
                             trackers=[ot.announce_url])
    t.info_hash      # hex v1 info-hash (allow it on opentracker)
    t.path           # the .torrent file
    ...
    content.assert_same_tree(src.path, tmp_path / "dl" / "sample", skip_empty=False)

For single files: ``make_file(tmp_path / "seed" / "one.bin", 256 << 20)`` then ``make_torrent`` on that file.
"""

from __future__ import annotations

import filecmp
import os
import random
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Content:
    """Files made for a test: ``path`` is what the torrent describes, ``parent`` the save folder to seed from."""

    path: Path
    files: dict[str, int]  # relative path (posix, below ``path``) -> size; a single file maps "" -> size

    @property
    def parent(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def total_size(self) -> int:
        return sum(self.files.values())


@dataclass(frozen=True)
class TorrentFile:
    """A .torrent written to ``path``."""

    path: Path
    info_hash: str  # hex v1 info-hash ("" for a v2-only torrent)
    info_hash_v2: str  # hex v2 info-hash ("" for v1 only)
    name: str
    piece_length: int
    num_pieces: int
    total_size: int

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()


def write_random(path: Path, size: int, seed: int) -> None:
    """Write ``size`` pseudo-random bytes from ``seed`` to ``path`` (parents made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, _CHUNK)
            f.write(rng.randbytes(n))
            left -= n


def make_file(path: Path, size: int, seed: int = 1) -> Content:
    """One file of ``size`` random bytes (a single-file torrent's content)."""
    write_random(path, size, seed)
    return Content(path=path, files={"": size})


def multifile_sizes(total: int, piece_length: int) -> dict[str, int]:
    """The default layout's sizes for about ``total`` bytes: see the module docstring."""
    small = max(1, piece_length // 3)
    tail = piece_length + piece_length // 2 + 1234  # crosses a boundary; odd -> short last piece
    big = max(2 * piece_length + 777, total - small - tail)
    sizes = {"empty.txt": 0, "small.txt": small, "big.bin": big, "sub/dir/tail.bin": tail}
    total_size = sum(sizes.values())
    if total_size % piece_length == 0:  # keep the last piece short
        sizes["sub/dir/tail.bin"] += 1
    return sizes


def make_multifile(
    parent: Path, *, total: int = 4 << 20, piece_length: int = 64 << 10, name: str = "sample", seed: int = 7
) -> Content:
    """Make ``parent/name/`` with the default multi-file layout of about ``total`` bytes."""
    root = parent / name
    sizes = multifile_sizes(total, piece_length)
    for i, (rel, size) in enumerate(sizes.items()):
        write_random(root / rel, size, seed * 1000 + i)
    return Content(path=root, files=sizes)


def make_torrent(
    content_path: Path,
    out: Path,
    *,
    piece_length: int = 64 << 10,
    trackers: list[str] | tuple[str, ...] = (),
    version: str = "v1",
    private: bool = False,
) -> TorrentFile:
    """Hash ``content_path`` (file or folder) with libtorrent and write a .torrent to ``out``.

    ``version`` is "v1", "v2" or "hybrid". ``trackers`` each get their own tier (BEP 12 order kept).
    """
    import libtorrent as lt

    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[version]
    ct = lt.create_torrent(lt.list_files(str(content_path)), piece_length, flags=flags)
    for tier, url in enumerate(trackers):
        ct.add_tracker(url, tier)
    if private:
        ct.set_priv(True)
    ct.set_creator("shoal-test-harness")
    lt.set_piece_hashes(ct, str(content_path.parent))
    data = lt.bencode(ct.generate())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    ti = lt.torrent_info(str(out))
    ihs = ti.info_hashes()
    return TorrentFile(
        path=out,
        info_hash=str(ihs.v1) if ihs.has_v1() else "",
        info_hash_v2=str(ihs.v2) if ihs.has_v2() else "",
        name=ti.name(),
        piece_length=ti.piece_length(),
        num_pieces=ti.num_pieces(),
        total_size=ti.total_size(),
    )


def list_files(root: Path, *, skip_empty: bool = False) -> dict[str, int]:
    """Relative posix path -> size for every regular file below ``root`` (or ``{"": size}`` for a file)."""
    if root.is_file():
        return {"": root.stat().st_size}
    out: dict[str, int] = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            size = p.stat().st_size
            if skip_empty and size == 0:
                continue
            out[p.relative_to(root).as_posix()] = size
    return out


def tree_differences(expected: Path, actual: Path, *, skip_empty: bool = False) -> list[str]:
    """What differs between two files or folders, byte for byte; empty when identical.

    ``skip_empty`` ignores 0-byte files on both sides (Transmission 3.00 never creates them).
    """
    if not actual.exists():
        return [f"{actual} does not exist"]
    a = list_files(expected, skip_empty=skip_empty)
    b = list_files(actual, skip_empty=skip_empty)
    diffs = [f"missing: {k or actual.name}" for k in sorted(a.keys() - b.keys())]
    diffs += [f"unexpected: {k}" for k in sorted(b.keys() - a.keys())]
    for k in sorted(a.keys() & b.keys()):
        pa, pb = (expected / k, actual / k) if k else (expected, actual)
        if a[k] != b[k]:
            diffs.append(f"size differs: {k or actual.name}: {b[k]} != {a[k]}")
        elif not filecmp.cmp(pa, pb, shallow=False):
            diffs.append(f"content differs: {k or actual.name}: {describe_difference(pa, pb)}")
    return diffs


def describe_difference(expected: Path, actual: Path, block: int = 16 * 1024) -> str:
    """Where two files of one size differ, in blocks (16 KiB): how many, the first, and whether they read as zeros
    in ``actual`` (a block never written) or hold other bytes (a block written wrong)."""
    differing = zeros = 0
    first = -1
    with open(expected, "rb") as fe, open(actual, "rb") as fa:
        index = 0
        while chunk := fe.read(block):
            got = fa.read(block)
            if got != chunk:
                differing += 1
                zeros += not got.strip(b"\0")
                first = index if first < 0 else first
            index += 1
    return f"{differing} block(s) of {block >> 10} KiB differ, first at byte {first * block}, {zeros} of them zeros"


def assert_same_tree(expected: Path, actual: Path, *, skip_empty: bool = False) -> None:
    """Raise AssertionError listing every difference between ``expected`` and ``actual``."""
    diffs = tree_differences(expected, actual, skip_empty=skip_empty)
    assert not diffs, "trees differ:\n  " + "\n  ".join(diffs)
