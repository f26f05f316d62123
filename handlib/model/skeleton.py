"""Joint names and orders: MANO's 16-joint tree and InterHand2.6M's 21 joints."""

from __future__ import annotations

import numpy as np

#: MANO joint order (index into pose / J_regressor rows).
MANO_JOINTS = (
    "wrist",
    "index1",
    "index2",
    "index3",
    "middle1",
    "middle2",
    "middle3",
    "pinky1",
    "pinky2",
    "pinky3",
    "ring1",
    "ring2",
    "ring3",
    "thumb1",
    "thumb2",
    "thumb3",
)
#: Parent of each MANO joint (-1 for the root).
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
#: Finger name -> its three MANO joints, base to tip.
FINGER_JOINTS = {
    "thumb": (13, 14, 15),
    "index": (1, 2, 3),
    "middle": (4, 5, 6),
    "ring": (10, 11, 12),
    "pinky": (7, 8, 9),
}
#: Fingertip order of the extra tip joints (as smplx and InterHand2.6M use).
TIP_ORDER = ("thumb", "index", "middle", "ring", "pinky")
#: smplx's MANO fingertip vertex ids, in TIP_ORDER (for the official MANO mesh).
MANO_TIP_VERTEX_IDS = (744, 320, 443, 554, 671)

#: InterHand2.6M's per-hand joint order: per finger tip -> base, thumb first; wrist last.
INTERHAND_JOINTS = tuple(f"{finger}{k}" for finger in TIP_ORDER for k in (4, 3, 2, 1)) + ("wrist",)


def interhand_from_mano_tips() -> np.ndarray:
    """Index array (21,) into [16 MANO joints, 5 tips in TIP_ORDER] giving InterHand order."""
    order = []
    for t, finger in enumerate(TIP_ORDER):
        base, mid, end = FINGER_JOINTS[finger]
        order += [16 + t, end, mid, base]
    order.append(0)
    return np.asarray(order, dtype=np.int64)


def kintree_table() -> np.ndarray:
    """MANO's (2, 16) kintree_table: parents (root as 2**32 - 1) over joint ids."""
    parents = np.array([p if p >= 0 else 2**32 - 1 for p in MANO_PARENTS], dtype=np.int64)
    return np.stack([parents, np.arange(16, dtype=np.int64)])


def interhand_regressor(j_regressor: np.ndarray, tip_vertex_ids: np.ndarray) -> np.ndarray:
    """(21, V) regressor in InterHand2.6M order from MANO's (16, V) and 5 tip vertices."""
    n_verts = j_regressor.shape[1]
    tips = np.zeros((5, n_verts))
    tips[np.arange(5), np.asarray(tip_vertex_ids, dtype=np.int64)] = 1.0
    return np.concatenate([j_regressor, tips])[interhand_from_mano_tips()]
