"""Shoal: a peer-to-peer file-sharing engine that speaks the BitTorrent protocol."""

from __future__ import annotations

from shoal.errors import ShoalError

__version__ = "0.1.0"

__all__ = ["ShoalError", "__version__"]
