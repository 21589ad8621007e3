"""Safe path components (RELIABILITY-CASES.md cases 10-13)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shoal.codec.paths import PathSet, check_path, confine, sanitize_component
from shoal.errors import UnsafePathError


@pytest.mark.parametrize(
    "raw",
    [b"..", b".", b"", "..", b"/etc/passwd", b"a/../../b", b"..\\..\\x", b"C:\\x", b"a\x00b", b"/"],
)
def test_rejected_components(raw: bytes | str) -> None:
    with pytest.raises(UnsafePathError):
        sanitize_component(raw)


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        (b"normal.txt", "normal.txt"),
        (b"CON", "_CON"),
        (b"nul.txt", "_nul.txt"),
        (b"COM1.tar", "_COM1.tar"),
        (b"lpt9", "_lpt9"),
        (b"console", "console"),
        (b"C:", "C_"),
        (b'a<b>c:d|e?f*g"h', "a_b_c_d_e_f_g_h"),
        (b"ctl\x01\x1f\x7fx", "ctl___x"),
        (b"trail. . ", "trail"),
        (b"...", "_"),
        ("evil\u202egpj.exe".encode(), "evilgpj.exe"),
        ("zero\u200bwidth\ufeff".encode(), "zerowidth"),
        (b"bad\xff\xfeutf8", "bad__utf8"),
        ("caf\u00e9".encode(), "caf\u00e9"),
        ("bad\udcff", "bad_"),  # os.walk's surrogateescape for a non-UTF-8 local name
        ("lone\ud800", "lone_"),
    ],
)
def test_neutralised_components(raw: bytes | str, safe: str) -> None:
    assert sanitize_component(raw) == safe


def test_long_name_truncated_keeping_extension() -> None:
    name = "x" * 10_000 + ".mkv"
    out = sanitize_component(name.encode(), max_name_length=240)
    assert out.endswith(".mkv")
    assert len(out.encode()) == 240
    multibyte = sanitize_component(("\u00e9" * 300).encode(), max_name_length=255)
    assert len(multibyte.encode()) <= 255
    assert multibyte == "\u00e9" * 127


def test_name_length_limit_one_past() -> None:
    assert sanitize_component(b"a" * 20, max_name_length=20) == "a" * 20
    assert sanitize_component(b"a" * 21, max_name_length=20) == "a" * 20


def test_path_depth_one_past() -> None:
    assert len(check_path([b"d"] * 100, max_path_depth=100)) == 100
    with pytest.raises(UnsafePathError, match="max_path_depth 100"):
        check_path([b"d"] * 101, max_path_depth=100)


def test_path_length_one_past() -> None:
    comps = [b"a" * 9, b"b" * 10]  # 9 + 1 + 10 = 20 bytes
    assert check_path(comps, max_path_length=20) == ("a" * 9, "b" * 10)
    with pytest.raises(UnsafePathError, match="max_path_length 19"):
        check_path(comps, max_path_length=19)


def test_empty_path_rejected() -> None:
    with pytest.raises(UnsafePathError):
        check_path([])


def test_duplicates_and_conflicts() -> None:
    s = PathSet()
    s.add(("t", "a", "b.txt"))
    with pytest.raises(UnsafePathError, match="duplicate"):
        s.add(("t", "a", "b.txt"))
    with pytest.raises(UnsafePathError, match="duplicate"):
        s.add(("t", "A", "B.TXT"))
    with pytest.raises(UnsafePathError, match="also a directory"):
        s.add(("t", "a"))
    s.add(("t", "c"))
    with pytest.raises(UnsafePathError, match="also a file"):
        s.add(("t", "c", "d"))


def test_confine_inside_and_outside(tmp_path: Path) -> None:
    root = tmp_path / "save"
    root.mkdir()
    (tmp_path / "canary").mkdir()
    assert confine(root, ["a", "b.txt"]) == root / "a" / "b.txt"
    for bad in (["..", "canary"], ["/etc/passwd"], ["a", ""], ["a\x00"]):
        with pytest.raises(UnsafePathError):
            confine(root, bad)
    os.symlink(tmp_path / "canary", root / "link")
    with pytest.raises(UnsafePathError, match="outside"):
        confine(root, ["link", "x"])
    assert list((tmp_path / "canary").iterdir()) == []
