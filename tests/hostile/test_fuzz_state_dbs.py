"""Hostile local state files besides resume data (cases 9, 50b): the DHT nodes database and the tracker's state
database, damaged (garbage bytes, a file with damaged pages) or holding rows of the wrong types (SQLite columns are
loosely typed). Loading may raise only a ShoalError or skip the bad rows; it must never crash the program."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzkit import CORPUS_DIR, HOSTILE
from shoal.dht.persist import NodesDb
from shoal.errors import ShoalError
from shoal.trackerd.config import TrackerdConfig
from shoal.trackerd.registry import Registry
from shoal.trackerd.state import StateDb

cells: st.SearchStrategy[Any] = st.one_of(  # no NULLs: the columns are NOT NULL
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=24),
    st.text(max_size=12),
)


def _nodes_db(path: Path, rows: list[tuple[Any, Any, Any, Any]], meta: list[tuple[Any, Any]]) -> None:
    NodesDb(path).close()  # creates the schema
    db = sqlite3.connect(path)
    with db:
        db.executemany("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?)", rows)
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta)
    db.close()


@HOSTILE
@given(
    st.lists(st.tuples(cells, cells, cells, cells), max_size=6),
    st.lists(st.tuples(st.sampled_from(["node_id", "external_ip"]), cells), max_size=2),
)
def test_dht_nodes_db_with_rows_of_any_type(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[Any, Any, Any, Any]],
    meta: list[tuple[Any, Any]],
) -> None:
    path = tmp_path_factory.mktemp("nodes") / "dht.sqlite"
    _nodes_db(path, rows, meta)
    db = NodesDb(path)
    try:
        for load in (lambda: db.load_nodes(100), db.load_node_id, db.load_external_ip):
            try:
                load()
            except ShoalError:
                pass
    finally:
        db.close()


def test_fuzz_finding_dht_nodes_db_port_of_the_wrong_type(tmp_path: Path) -> None:
    """A ``port`` stored as text made ``load_nodes`` raise ValueError from ``int()``: now the row is skipped."""
    path = tmp_path / "dht.sqlite"
    _nodes_db(path, [(b"n" * 20, "10.0.0.1", "abc", 1.0), (b"m" * 20, "10.0.0.2", 6881, 2.0)], [])
    db = NodesDb(path)
    try:
        assert db.load_nodes(10) == [(b"m" * 20, "10.0.0.2", 6881)]
    finally:
        db.close()


@pytest.mark.parametrize(
    "corpus_file", ["garbage", "truncated", "regress_undecodable_pragma", "regress_malformed_pages"]
)
def test_damaged_state_files_raise_only_shoal_errors(tmp_path: Path, corpus_file: str) -> None:
    for opener in ("nodes", "tracker"):
        path = tmp_path / f"{opener}.sqlite"
        shutil.copy(CORPUS_DIR / "resume" / corpus_file, path)
        try:
            if opener == "nodes":
                db = NodesDb(path)
                try:
                    db.load_nodes(10)
                    db.load_node_id()
                finally:
                    db.close()
            else:
                state = StateDb(path)
                try:
                    state.load(Registry(TrackerdConfig(), random.Random(0)), 0.0, 1000.0)
                finally:
                    state.close()
        except ShoalError:
            pass


def test_tracker_state_db_with_rows_of_the_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    StateDb(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("INSERT INTO swarms VALUES (?, ?)", (b"i" * 20, 3))
        db.execute("INSERT INTO peers VALUES (?, ?, ?, ?, ?)", (b"i" * 20, 12345, b"p" * 20, 1, b"soon"))
        db.execute("INSERT INTO swarms VALUES (?, ?)", ("text", b"blob"))
        db.execute(
            "INSERT INTO peers VALUES (?, ?, ?, ?, ?)", (b"j" * 20, b"\x7f\0\0\1\x1a\xe1", 7, 1, 999.0)
        )
        db.execute(
            "INSERT INTO peers VALUES (?, ?, ?, ?, ?)",
            (b"i" * 20, b"\x7f\0\0\1\x1a\xe2", b"q" * 20, 0, 999.0),
        )
    db.close()
    state = StateDb(path)
    try:
        # the rows of the wrong type are skipped; the one good peer and the good swarm come back
        assert state.load(Registry(TrackerdConfig(), random.Random(0)), 0.0, 1000.0) == 1
    finally:
        state.close()
