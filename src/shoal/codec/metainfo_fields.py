"""Field-level pieces of the metainfo parser, shared by ``metainfo`` (v1) and ``metainfo_v2`` (BEP 52).

``FileEntry`` lives here so both parsers can build it; import it from ``shoal.codec.metainfo``.
"""

from __future__ import annotations

from typing import Any

from shoal.codec.paths import PAD_DIR, check_path
from shoal.config import Settings
from shoal.errors import MetainfoError
from shoal.records import record

ALLOWED_TRACKER_SCHEMES = ("http://", "https://", "udp://")
ALLOWED_WEB_SEED_SCHEMES = ("http://", "https://")


@record
class FileEntry:
    """One file (or pad) of a torrent, in the piece space."""

    path: tuple[str, ...]
    length: int
    offset: int
    pieces_root: bytes | None = None
    attr: str = ""
    symlink: tuple[str, ...] | None = None

    @property
    def is_pad(self) -> bool:
        return "p" in self.attr

    @property
    def is_executable(self) -> bool:
        return "x" in self.attr

    @property
    def is_hidden(self) -> bool:
        return "h" in self.attr


# ---------------------------------------------------------------- field helpers


def get_field(d: dict[bytes, Any], key: bytes, kind: type, where: str = "info") -> Any:
    if key not in d:
        raise MetainfoError(f"{where} has no {key.decode()!r}")
    value = d[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MetainfoError(
            f"{where} {key.decode()!r} is not {'an integer' if kind is int else 'a ' + kind.__name__}"
        )
    return value


def get_text(d: dict[bytes, Any], key: bytes, where: str = "info") -> bytes:
    utf8 = d.get(key + b".utf-8")
    if isinstance(utf8, bytes):
        return utf8
    result: bytes = get_field(d, key, bytes, where)
    return result


def opt_text(d: dict[bytes, Any], key: bytes) -> str | None:
    v = d.get(key)
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else None


def opt_int(d: dict[bytes, Any], key: bytes) -> int | None:
    v = d.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def pad_path(length: int, prefix: tuple[str, ...] = ()) -> tuple[str, ...]:
    return (*prefix, PAD_DIR, str(length))


def path_limits(s: Settings, used: int) -> dict[str, int]:
    return {
        "max_name_length": s.max_name_length,
        "max_path_length": s.max_path_length,
        "max_path_depth": s.max_path_depth - used,
    }


def parse_attr(entry: dict[bytes, Any]) -> str:
    attr = entry.get(b"attr", b"")
    if not isinstance(attr, bytes):
        raise MetainfoError("file attr is not a string")
    return "".join(sorted({chr(c) for c in attr if chr(c) in "pxhl"}))


def parse_symlink(entry: dict[bytes, Any], attr: str, s: Settings) -> tuple[str, ...] | None:
    if "l" not in attr:
        return None
    target = entry.get(b"symlink path")
    if not isinstance(target, list) or not all(isinstance(c, bytes) for c in target):
        raise MetainfoError("symlink file has no valid 'symlink path'")
    return check_path(target, **path_limits(s, 0))


def _tracker_ok(url: Any) -> str | None:
    if not isinstance(url, bytes):
        return None
    text = url.decode("utf-8", errors="replace").strip()
    return text if text.lower().startswith(ALLOWED_TRACKER_SCHEMES) and len(text) <= 2048 else None


def parse_trackers(top: dict[bytes, Any], s: Settings) -> list[list[str]]:
    """Tiers from ``announce-list`` (BEP 12), else ``announce``; only http, https and udp; capped."""
    tiers: list[list[str]] = []
    seen: set[str] = set()
    count = 0
    raw_tiers = top.get(b"announce-list")
    if not (isinstance(raw_tiers, list) and raw_tiers):
        raw_tiers = [[top.get(b"announce")]]
    for raw_tier in raw_tiers:
        if not isinstance(raw_tier, list):
            continue
        tier = []
        for url in raw_tier:
            text = _tracker_ok(url)
            if text is None or text in seen or count >= s.max_trackers:
                continue
            seen.add(text)
            tier.append(text)
            count += 1
        if tier:
            tiers.append(tier)
    return tiers


def parse_web_seeds(value: Any, s: Settings) -> list[str]:
    items = value if isinstance(value, list) else [value]
    result: list[str] = []
    for item in items:
        if not isinstance(item, bytes):
            continue
        text = item.decode("utf-8", errors="replace").strip()
        if text.lower().startswith(ALLOWED_WEB_SEED_SCHEMES) and text not in result:
            result.append(text)
        if len(result) >= s.max_web_seeds:
            break
    return result
