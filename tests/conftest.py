from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

FRESH_PROCESS_ENV = "SHOAL_TEST_FRESH_PROCESS"


@pytest.fixture
def in_fresh_process(request: pytest.FixtureRequest) -> Callable[[], None]:
    """Run this very test (same parameters) again in a new pytest process, and pass or fail with it.

    For code paths that are only taken in a process with one thread (forked hash workers): earlier tests of a full
    run leave threads behind, so instead of skipping there, the test re-runs itself where the path is taken.
    """

    def run() -> None:
        if os.environ.get(FRESH_PROCESS_ENV):
            pytest.fail("the path this test needs is not taken even in a fresh process")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid]
        env = {**os.environ, FRESH_PROCESS_ENV: "1"}
        r = subprocess.run(
            cmd,
            cwd=request.config.rootpath,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        if r.returncode != 0:
            pytest.fail(f"in a fresh process: {r.stdout[-4000:]}{r.stderr[-2000:]}")

    return run
