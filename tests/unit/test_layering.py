"""The sans-IO cores never import I/O, clocks or the engine (ARCHITECTURE.md, layering rule)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "shoal"
CORES = ["codec", "wire", "policy", "tracker/proto", "dht", "trackerd/registry.py", "storage/layout.py"]
CORE_EXCEPTIONS = {"dht/service.py", "dht/persist.py"}
FORBIDDEN = {"asyncio", "socket", "time", "aiohttp", "shoal.engine", "threading", "selectors", "sqlite3"}


def _core_files() -> list[Path]:
    files: list[Path] = []
    for core in CORES:
        path = SRC / core
        files.extend([path] if path.suffix == ".py" else sorted(path.rglob("*.py")))
    return [f for f in files if f.exists() and str(f.relative_to(SRC)) not in CORE_EXCEPTIONS]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_cores_do_not_import_io() -> None:
    bad = []
    for path in _core_files():
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert not bad, bad


def test_cores_do_not_use_module_level_random() -> None:
    bad = []
    for path in _core_files():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "random"
                and node.func.attr != "Random"
            ):
                bad.append(f"{path.relative_to(SRC)}:{node.lineno} calls random.{node.func.attr}")
    assert not bad, bad
