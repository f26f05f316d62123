"""SMVR's error metrics (section 4.1), one implementation for tests, notebooks and the CLI."""
from __future__ import annotations

from typing import Sequence

import torch


def vertex_error(vertices: torch.Tensor, truth: torch.Tensor) -> float:
    """eps_v: mean per-vertex Euclidean distance (mm) between (V, 3) meshes."""
    return float((vertices - truth).norm(dim=-1).mean())


def joint_error(joints: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """eps_j: mean Euclidean distance (mm) over the valid joints of (J, 3) sets."""
    distance = (joints - truth).norm(dim=-1)
    if valid is not None:
        distance = distance[valid.to(torch.bool)]
    return float(distance.mean()) if distance.numel() else float("nan")


def backprojection_error(observed: Sequence[torch.Tensor], rendered: Sequence[torch.Tensor],
                         alphas: Sequence[torch.Tensor], coverage: float = 0.5) -> float:
    """Mean absolute difference in intensity levels (0-255, averaged over RGB) between observed
    and rendered images (each (H, W, 3) in [0, 1]) over hand pixels: those the rendered hand
    covers at least ``coverage``."""
    total, count = 0.0, 0
    for o, r, a in zip(observed, rendered, alphas):
        mask = a >= coverage
        total += float((o - r).abs()[mask].sum()) * 255.0 / 3.0
        count += int(mask.sum())
    return total / count if count else float("nan")
