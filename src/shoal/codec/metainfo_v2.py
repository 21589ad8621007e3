"""BEP 52 parts of the metainfo parser: the ``file tree`` and the ``piece layers``.

``parse_file_tree`` walks the tree in the order of the bencoded dictionaries (which BEP 52 requires to be sorted),
sanitises every path and returns ``FileEntry`` objects in one piece space, with a synthetic pad entry after every
file that ends inside a piece (as libtorrent does), so every file starts on a piece boundary. ``validate_piece_layers`` checks that each file
larger than one piece has a layer of the right size whose merkle root is the file's ``pieces root``.
"""

from __future__ import annotations

from typing import Any

from shoal.codec import merkle
from shoal.codec.metainfo_fields import FileEntry, pad_path, parse_attr, parse_symlink
from shoal.codec.paths import PathSet, check_path_length, sanitize_component
from shoal.config import Settings
from shoal.errors import MetainfoError


def parse_file_tree(
    tree: Any, name: str, piece_length: int, s: Settings, multi_file: bool | None = None
) -> list[FileEntry]:
    """Files of a v2 ``file tree``. A tree holding one file at its root is a single-file torrent (as in
    libtorrent), unless ``multi_file`` says otherwise (a hybrid whose v1 part has a ``files`` list)."""
    if not isinstance(tree, dict) or not tree:
        raise MetainfoError("v2 info has no valid 'file tree'")
    single = (
        len(tree) == 1 and isinstance(next(iter(tree.values())), dict) and b"" in next(iter(tree.values()))
    )
    if multi_file is not None:
        single = not multi_file
    raw_files: list[tuple[tuple[str, ...], dict[bytes, Any]]] = []
    seen = PathSet()
    # iterative depth-first walk in dictionary order: (node, path so far)
    stack: list[tuple[dict[bytes, Any], tuple[str, ...]]] = [(tree, () if single else (name,))]
    pending: list[list[tuple[bytes, Any]]] = [list(reversed(tree.items()))]
    while pending:
        items = pending[-1]
        if not items:
            pending.pop()
            stack.pop()
            continue
        key, node = items.pop()
        parent_path = stack[-1][1]
        if not isinstance(node, dict):
            raise MetainfoError("file tree node is not a dictionary")
        if not key:
            raise MetainfoError("file tree has an empty path component")
        if len(parent_path) + 1 > s.max_path_depth:
            raise MetainfoError(f"file tree depth exceeds max_path_depth {s.max_path_depth}")
        component = sanitize_component(key, max_name_length=s.max_name_length)
        path = (*parent_path, component)
        if b"" in node:
            if len(node) != 1:
                raise MetainfoError(f"file tree entry {'/'.join(path)!r} is both a file and a directory")
            if len(raw_files) >= s.max_file_count:
                raise MetainfoError(f"file count exceeds max_file_count {s.max_file_count}")
            props = node[b""]
            if not isinstance(props, dict):
                raise MetainfoError(f"file tree entry {'/'.join(path)!r} is not a dictionary")
            check_path_length(path, s.max_path_length)
            seen.add(path)
            raw_files.append((path, props))
        else:
            if not node:
                raise MetainfoError(f"file tree directory {'/'.join(path)!r} is empty")
            stack.append((node, path))
            pending.append(list(reversed(node.items())))
    files: list[FileEntry] = []
    offset = 0
    for path, props in raw_files:
        length = props.get(b"length")
        if not isinstance(length, int) or isinstance(length, bool) or length < 0:
            raise MetainfoError(f"file {'/'.join(path)!r} has no valid length")
        root = props.get(b"pieces root")
        if length > 0:
            if not isinstance(root, bytes) or len(root) != merkle.HASH_SIZE:
                raise MetainfoError(f"file {'/'.join(path)!r} has no valid 'pieces root'")
            if root == merkle.ZERO_HASH:
                raise MetainfoError(f"file {'/'.join(path)!r} has an all-zero 'pieces root'")
        else:
            root = None
        attr = parse_attr(props)
        if "p" in attr:
            raise MetainfoError(f"v2 file {'/'.join(path)!r} is marked as a pad file")
        files.append(FileEntry(path, length, offset, root, attr, parse_symlink(props, attr, s)))
        offset += length
        if offset % piece_length:  # like libtorrent: a pad after every file that ends inside a piece
            pad = piece_length - offset % piece_length
            files.append(FileEntry(pad_path(pad, (name,)), pad, offset, attr="p"))
            offset += pad
    return files


def validate_piece_layers(value: Any, files: tuple[FileEntry, ...], piece_length: int) -> dict[bytes, bytes]:
    """Check ``piece layers`` against every file larger than one piece; return the layers that are used."""
    needed = [f for f in files if not f.is_pad and f.pieces_root is not None and f.length > piece_length]
    if not needed:
        return {}
    if not isinstance(value, dict):
        raise MetainfoError("v2 torrent has no 'piece layers'")
    result: dict[bytes, bytes] = {}
    for f in needed:
        assert f.pieces_root is not None
        layer = value.get(f.pieces_root)
        name = "/".join(f.path)
        if not isinstance(layer, bytes):
            raise MetainfoError(f"piece layer missing for file {name!r}")
        want = -(-f.length // piece_length) * merkle.HASH_SIZE
        if len(layer) != want:
            raise MetainfoError(f"piece layer of file {name!r} has {len(layer)} bytes, expected {want}")
        if merkle.root_from_layer(merkle.split_layer(layer), piece_length) != f.pieces_root:
            raise MetainfoError(f"piece layer of file {name!r} does not match its pieces root")
        result[f.pieces_root] = layer
    return result
