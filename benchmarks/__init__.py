"""Benchmarks: Shoal against reference peers, measured in the same run (see docs/PERFORMANCE.md).

Run them through ``shoal bench CASE`` or ``python -m benchmarks.bench_transfer CASE`` from the repository root.
Importing this package puts ``tests/`` on ``sys.path`` so the interop harness (``interop.harness``) that starts
the reference peers can be imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
