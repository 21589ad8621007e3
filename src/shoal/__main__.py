"""``python -m shoal`` runs the command line."""

from __future__ import annotations

from shoal.cli.main import console

console()
