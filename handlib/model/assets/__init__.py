"""Committed model assets. ``open_hand_right.npz`` is built by ``python -m handlib.model.assets.build``."""

from pathlib import Path

ASSET_DIR = Path(__file__).resolve().parent
OPEN_HAND_RIGHT = ASSET_DIR / "open_hand_right.npz"
