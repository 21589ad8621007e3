"""Recheck against torrents made by libtorrent (the reference): v1, v2-only and hybrid, multi-file with an empty
file, a small file and pad files. Every piece of the real data verifies; a flipped byte fails its piece only."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from peers import require_libtorrent
from shoal.codec.metainfo import Metainfo
from shoal.storage.check import expected_hashes, recheck
from shoal.storage.files import FileStorage
from shoal.storage.layout import Layout


def make_torrent(tmp_path: Path, mode: str) -> bytes:
    lt = require_libtorrent()
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.bin").write_bytes(os.urandom(100_000))
    (data / "sub" / "b.bin").write_bytes(os.urandom(5000))
    (data / "empty").write_bytes(b"")
    (data / "c.bin").write_bytes(os.urandom(40_000))
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[mode]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fs = lt.file_storage()
        lt.add_files(fs, str(data))
        t = lt.create_torrent(fs, 32768, flags=flags)
        lt.set_piece_hashes(t, str(tmp_path))
        return bytes(lt.bencode(t.generate()))


@pytest.mark.parametrize("mode", ["v1", "v2", "hybrid"])
async def test_recheck_reference_torrents(tmp_path: Path, mode: str) -> None:
    meta = Metainfo.from_bytes(make_torrent(tmp_path, mode))
    layout = Layout.from_info(meta.info)
    hashes, algo = expected_hashes(meta)
    assert algo == ("v2" if mode == "v2" else "sha1")
    st = FileStorage(layout, tmp_path)
    await st.open()
    good = await recheck(st, hashes, algo=algo)
    checkable = [i for i in range(layout.num_pieces) if hashes[i] is not None]
    assert list(good) == checkable and len(checkable) == layout.num_pieces
    await st.close()
    # flip one byte in c.bin: exactly the pieces holding it fail
    target = tmp_path / "data" / "c.bin"
    raw = bytearray(target.read_bytes())
    raw[35_000] ^= 1
    target.write_bytes(bytes(raw))
    ci = next(i for i, f in enumerate(layout.files) if f.path[-1] == "c.bin")
    bad_piece = (layout.files[ci].offset + 35_000) // layout.piece_length
    good = await recheck(st, hashes, algo=algo)
    assert set(checkable) - set(good) == {bad_piece}
    await st.close()


@pytest.mark.parametrize("mode", ["v1", "v2", "hybrid"])
async def test_recheck_runs_agree_with_piece_by_piece(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The FileStorage fast path (runs into reused buffers, here of 16 KiB so a 32 KiB piece takes two reads)
    gives what hashing each piece alone gives, also around a damaged piece and a run whose read fails."""
    from shoal.errors import StorageError
    from shoal.storage import hasher

    monkeypatch.setattr(hasher, "POOLED_BUFFER_BYTES", 16384)
    monkeypatch.setattr(hasher, "RUN_BYTES", 65536)
    meta = Metainfo.from_bytes(make_torrent(tmp_path, mode))
    layout = Layout.from_info(meta.info)
    hashes, algo = expected_hashes(meta)
    target = tmp_path / "data" / "a.bin"
    raw = bytearray(target.read_bytes())
    raw[70_000] ^= 1
    target.write_bytes(bytes(raw))
    st = FileStorage(layout, tmp_path)
    await st.open()
    one_by_one = [i for i in range(layout.num_pieces) if await st.hash_piece(i, algo) == hashes[i]]
    assert len(one_by_one) == layout.num_pieces - 1
    assert list(await recheck(st, hashes, algo=algo)) == one_by_one
    real_read = st.read_into

    def failing_read(view: memoryview, offset: int) -> None:  # the first run cannot be read as a run
        if offset == 0:
            raise StorageError("read failed")
        real_read(view, offset)

    monkeypatch.setattr(st, "read_into", failing_read)
    assert list(await recheck(st, hashes, algo=algo)) == one_by_one
    await st.close()
