#!/usr/bin/env bash
# The one command that sets up and passes the tests: reference peers (as root), a venv with the test extra,
# then ruff, mypy and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-peers.sh
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,speed]'
.venv/bin/ruff check src tests benchmarks fuzz
.venv/bin/ruff format --check src tests benchmarks fuzz
.venv/bin/mypy
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
