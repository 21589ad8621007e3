"""Case 49d, in Python terms: the k-th storage operation of a download fails with an exception nobody planned for
(``MemoryError``, as when an allocation fails). The torrent must end in a clear state: an error, or a retry that
completes; never a hung download or a process crash. Each k is a separate run; k walks over the first few dozen
write and read operations (CI runs k = 1 and 2; edit the list for a longer walk)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from faultkit import FAST, seeder
from shoal.engine.handle import TorrentState
from shoal.engine.session import Session
from shoal.storage.files import FileStorage
from swarm_helpers import make_payload, make_torrent, same_tree

pytestmark = pytest.mark.timeout(300)

OPS = (
    "hash_and_write_piece",
    "submit_hash_and_write_many",
    "write_piece",
    "write_block",
    "read_block",
    "read_piece",
    "hash_piece",
    "file_stats",
)


class FailingStorage:
    """A FileStorage whose ``k``-th call among ``OPS`` raises MemoryError once."""

    def __init__(self, layout: Any, root: Path, k: int) -> None:
        self._inner = FileStorage(layout, root)
        self._k = k
        self.calls = 0
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in OPS:
            return attr

        if name == "submit_hash_and_write_many":  # not a coroutine: failures come back through its callback

            def submit(items: Any, done: Any, *rest: Any) -> None:
                fail_at = None
                for j in range(len(items)):  # each piece of a batch is one operation
                    self.calls += 1
                    if self.calls == self._k:
                        fail_at = j
                if fail_at is None:
                    attr(items, done, *rest)
                    return
                self.failed = True
                error = MemoryError(f"injected allocation failure at storage call {self._k}")
                others = [item for j, item in enumerate(items) if j != fail_at]

                def merged(results: list[Any]) -> None:
                    done([*results[:fail_at], error, *results[fail_at:]])

                if others:
                    attr(others, merged, *rest)
                else:
                    merged([])

            return submit

        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self._k:
                self.failed = True
                raise MemoryError(f"injected allocation failure at storage call {self._k}")
            return await attr(*args, **kwargs)

        return wrapped


@pytest.mark.parametrize(
    "k",
    [
        1,  # file_stats while checking: the torrent goes to error, the rerun completes
        2,  # a piece's hash+write: the torrent goes to error (it used to hang), the rerun completes
        3,
        5,
        8,
        13,
    ],
)
async def test_kth_storage_call_fails_with_memory_error(tmp_path: Path, k: int) -> None:
    src = make_payload(tmp_path / "src" / "payload", [("a.bin", 700_000), ("b.bin", 50_001)], seed=k)
    torrent = tmp_path / "payload.torrent"
    torrent.write_bytes(make_torrent(src, piece_length=32 * 1024))
    made: list[FailingStorage] = []

    def factory(layout: Any, root: Path) -> FailingStorage:
        storage = FailingStorage(layout, root, k)
        made.append(storage)
        return storage

    async with seeder(torrent, src) as (_, _, addr):
        async with Session(FAST, listen=("127.0.0.1", 0), storage_factory=factory) as session:
            h = await session.add(torrent, save_path=tmp_path / "out", peers=[addr])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while True:
                st = h.status()
                if st.state is TorrentState.ERROR or st.is_complete:
                    break
                assert loop.time() < deadline, f"k={k}: hung after the injected failure: {st}"
                await asyncio.sleep(0.05)
            assert made and made[0].failed, f"k={k}: the failure was never injected ({made[0].calls} calls)"
            if st.state is TorrentState.ERROR:
                assert st.error and "allocation failure" in st.error, st.error
        if not st.is_complete:
            # the fault is gone: the same download started again completes
            async with Session(FAST, listen=("127.0.0.1", 0)) as session:
                h = await session.add(torrent, save_path=tmp_path / "out", peers=[addr])
                await h.wait_complete(timeout=60)
    assert same_tree(src, tmp_path / "out" / src.name)
