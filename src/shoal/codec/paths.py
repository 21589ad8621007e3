"""Safe file paths from untrusted torrents (RELIABILITY-CASES.md cases 10-13).

A torrent names its files with lists of path components. Every component goes through
:func:`sanitize_component`, every whole path through :func:`check_path`, and the set of paths through
:class:`PathSet`. The storage layer joins a checked path to its download root with :func:`confine`, which also
resolves symlinks and refuses anything that ends up outside the root.

Rejected (``UnsafePathError``), because no honest torrent contains them:

* a component that is ``..`` or ``.``, or empty;
* a component containing ``/`` or ``\\`` (absolute paths, ``a/../../b`` inside one element, ``..\\..\\x``);
* a component containing NUL;
* a path deeper than ``max_path_depth`` components, or longer than ``max_path_length`` bytes (UTF-8, after
  sanitising, separators included);
* two files with the same path (compared case-insensitively, so ``A.txt`` and ``a.txt`` collide on Windows and
  macOS too), and a file whose path is also a directory of another file.

Neutralised (the file keeps a usable, portable name; the same result on every OS):

* invalid UTF-8 bytes become ``_`` (through U+FFFD);
* control characters U+0001-U+001F and U+007F, and the Windows-forbidden ``< > : " | ? *``, become ``_``
  (so a drive letter ``C:`` becomes ``C_``);
* bidirectional overrides and zero-width characters (U+200B-U+200F, U+202A-U+202E, U+2060-U+2064,
  U+2066-U+2069, U+FEFF) are removed, which stops the ``exe.avi`` trick;
* trailing dots and spaces are removed (Windows drops them silently);
* names reserved on Windows (``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM1``-``COM9``, ``LPT1``-``LPT9``, with any
  extension, any case) get a ``_`` prefix;
* a component longer than ``max_name_length`` UTF-8 bytes is cut to that length, keeping its extension when the
  extension is shorter than 16 characters;
* a component that is empty after all this becomes ``_``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence

from shoal.errors import UnsafePathError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

PAD_DIR = ".pad"  # BEP 47: the folder name of pad files in v1 file lists
DEFAULT_MAX_NAME_LENGTH = 255
DEFAULT_MAX_PATH_LENGTH = 4096
DEFAULT_MAX_PATH_DEPTH = 100
MAX_KEPT_EXTENSION = 16

_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_FORBIDDEN = re.compile('[\x01-\x1f\x7f<>:"|?*\ufffd]')
_NEEDS_WORK = re.compile(
    '[\x00-\x1f\x7f<>:"|?*/\\\\\ufffd\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]'
)
_RESERVED_PREFIXES = frozenset({"con", "prn", "aux", "nul", "com", "lpt"})
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.IGNORECASE)


def decode_component(raw: bytes | str) -> str:
    """Text of a raw path component; invalid UTF-8 becomes U+FFFD (later ``_``).

    A ``str`` may come from the local file system (``os.walk``), where undecodable bytes are lone surrogates
    (``surrogateescape``); they get the same treatment as invalid UTF-8 in a torrent.
    """
    if isinstance(raw, str):
        if raw.isascii():
            return raw
        try:
            return raw.encode("utf-8", "surrogateescape").decode("utf-8", errors="replace")
        except UnicodeEncodeError:
            return raw.encode("utf-8", errors="replace").decode("utf-8")
    return raw.decode("utf-8", errors="replace")


def sanitize_component(raw: bytes | str, *, max_name_length: int = DEFAULT_MAX_NAME_LENGTH) -> str:
    """Return a safe, portable file or directory name for one raw path component, or raise UnsafePathError."""
    name = decode_component(raw)
    if (
        _NEEDS_WORK.search(name) is None
        and name[-1:] not in (".", " ", "")
        and name[:3].lower() not in _RESERVED_PREFIXES
        and len(name) * 4 <= max_name_length
    ):
        return name  # the common case: nothing to check further
    if name in ("", ".", ".."):
        raise UnsafePathError(f"unsafe path component {name!r}")
    if "\x00" in name:
        raise UnsafePathError(f"path component {name!r} contains nul")
    if "/" in name or "\\" in name:
        raise UnsafePathError(f"path component {name!r} contains a path separator")
    name = _INVISIBLE.sub("", name)
    name = _FORBIDDEN.sub("_", name)
    name = name.rstrip(". ")
    if _RESERVED.match(name):
        name = "_" + name
    name = _truncate(name, max_name_length)
    return name or "_"


def _truncate(name: str, limit: int) -> str:
    if len(name.encode()) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    keep = dot + ext if stem and 0 < len(ext) < MAX_KEPT_EXTENSION else ""
    budget = limit - len(keep.encode())
    cut = name[: len(name) - len(keep)] if keep else name
    encoded = cut.encode()[:budget]
    return encoded.decode("utf-8", errors="ignore").rstrip(". ") + keep


def check_path(
    components: Sequence[bytes | str],
    *,
    max_name_length: int = DEFAULT_MAX_NAME_LENGTH,
    max_path_length: int = DEFAULT_MAX_PATH_LENGTH,
    max_path_depth: int = DEFAULT_MAX_PATH_DEPTH,
) -> tuple[str, ...]:
    """Sanitise every component of a relative path and check its depth and length."""
    if not components:
        raise UnsafePathError("empty file path")
    if len(components) > max_path_depth:
        raise UnsafePathError(f"path depth {len(components)} exceeds max_path_depth {max_path_depth}")
    result = tuple(sanitize_component(c, max_name_length=max_name_length) for c in components)
    check_path_length(result, max_path_length)
    return result


def check_path_length(path: Sequence[str], max_path_length: int = DEFAULT_MAX_PATH_LENGTH) -> None:
    """Raise UnsafePathError if the sanitised ``path`` joined with ``/`` is longer than the limit (UTF-8 bytes)."""
    length = sum(len(c.encode()) for c in path) + len(path) - 1
    if length > max_path_length:
        raise UnsafePathError(f"path length {length} exceeds max_path_length {max_path_length}")


class PathSet:
    """Collects the paths of one torrent and rejects duplicates and file/directory conflicts in linear time."""

    def __init__(self) -> None:
        self._files: set[tuple[str, ...]] = set()
        self._dirs: set[tuple[str, ...]] = set()

    def add(self, path: tuple[str, ...]) -> None:
        key = tuple(c.casefold() for c in path)
        if key in self._files:
            raise UnsafePathError(f"duplicate file path {'/'.join(path)!r}")
        if key in self._dirs:
            raise UnsafePathError(f"file path {'/'.join(path)!r} is also a directory")
        for i in range(1, len(key)):
            prefix = key[:i]
            if prefix in self._files:
                raise UnsafePathError(f"directory {'/'.join(path[:i])!r} is also a file")
            self._dirs.add(prefix)
        self._files.add(key)


def check_unique(paths: Iterable[tuple[str, ...]]) -> None:
    """Raise UnsafePathError if two paths collide or a file is also a directory."""
    seen = PathSet()
    for path in paths:
        seen.add(path)


def confine(root: str | os.PathLike[str], components: Sequence[str]) -> Path:
    """Join checked ``components`` to ``root`` and make sure the result, symlinks resolved, stays inside it.

    Returns the joined (unresolved) path. Raises UnsafePathError when any component is unsafe or the resolved
    target is not inside the resolved root (e.g. a directory along the way is a symlink pointing outside).
    """
    for c in components:
        if c in ("", ".", "..") or "/" in c or "\\" in c or "\x00" in c or os.sep in c:
            raise UnsafePathError(f"unsafe path component {c!r}")
    from pathlib import Path  # here, not at the top: `shoal create` loads this module but never confines

    base = Path(root)
    target = base.joinpath(*components)
    real_root = os.path.realpath(base)
    real_target = os.path.realpath(target)
    if os.path.commonpath([real_root, real_target]) != real_root or real_target == real_root:
        raise UnsafePathError(f"path {'/'.join(components)!r} resolves outside the download folder")
    return target
