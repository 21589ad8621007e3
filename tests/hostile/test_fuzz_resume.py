"""Hostile resume files (case 50b): garbage, truncated or damaged SQLite is ignored or moved aside, never a crash,
and a claim about a file that is now short is never trusted."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzkit import CORPUS_DIR, HOSTILE, load_target, mutate
from shoal.errors import ResumeError
from shoal.policy.bitfield import Bitfield
from shoal.storage.resume import ResumeStore

TARGET = load_target("resume")
CHECKPOINT = (CORPUS_DIR / "resume" / "checkpoint").read_bytes()


@HOSTILE
@given(st.data())
def test_mutated_checkpoint(data: st.DataObject) -> None:
    TARGET.TestOneInput(mutate(CHECKPOINT, data.draw))


@pytest.mark.parametrize("cut", [0, 100, 4096, 8192, len(CHECKPOINT) - 1])
def test_truncated_checkpoint(cut: int) -> None:
    TARGET.TestOneInput(CHECKPOINT[:cut])


def _store_from(tmp_path: Path, corpus_file: str) -> ResumeStore:
    path = tmp_path / "resume.sqlite"
    shutil.copy(CORPUS_DIR / "resume" / corpus_file, path)
    return ResumeStore(path)


def test_fuzz_finding_resume_undecodable_text_is_moved_aside(tmp_path: Path) -> None:
    """atheris: a damaged header made ``PRAGMA journal_mode`` raise UnicodeDecodeError out of ResumeStore()."""
    store = _store_from(tmp_path, "regress_undecodable_pragma")
    try:
        assert (tmp_path / "resume.sqlite.corrupt").exists()
        assert store.load(TARGET.INFO_HASH, TARGET.LAYOUT, TARGET.FULL) is None
    finally:
        store.close()


def test_fuzz_finding_resume_damaged_pages_are_moved_aside(tmp_path: Path) -> None:
    """atheris: a file with damaged pages opened fine, then every read failed, so checkpoints were lost forever."""
    store = _store_from(tmp_path, "regress_malformed_pages")
    try:
        assert (tmp_path / "resume.sqlite.corrupt").exists()
        have = Bitfield(TARGET.LAYOUT.num_pieces)
        have.add(1)
        store.save(TARGET.INFO_HASH, have, TARGET.LAYOUT.piece_length, TARGET.FULL)
        state = store.load(TARGET.INFO_HASH, TARGET.LAYOUT, TARGET.FULL)
        assert state is not None and list(state.have) == [1]
    finally:
        store.close()


def test_fuzz_finding_resume_generation_of_the_wrong_type(tmp_path: Path) -> None:
    """atheris: a checkpoint row whose ``generation`` is a blob made ``save`` raise TypeError (int + bytes)."""
    store = _store_from(tmp_path, "regress_text_generation")
    try:
        have = Bitfield(TARGET.LAYOUT.num_pieces)
        have.add(2)
        with contextlib.suppress(
            ResumeError
        ):  # this damaged schema cannot take a save: a clean error is fine
            store.save(TARGET.INFO_HASH, have, TARGET.LAYOUT.piece_length, TARGET.FULL)
    finally:
        store.close()
