"""Error functions of SMVR (pure, torch): per-pixel photometric errors and the joint term."""

from __future__ import annotations

import torch

#: SMVR eq. 4 constants for intensities in [0, 1].
OCCLUSION_SCALE = 10.0
OCCLUSION_SIGMA = 0.25
#: SMVR eq. 5: joints within this many mm (per coordinate) are penalised quadratically.
JOINT_GAMMA_MM = 5.0


def mae(observed: torch.Tensor, rendered: torch.Tensor) -> torch.Tensor:
    """Per-element absolute error."""
    return (observed - rendered).abs()


def occlusion_aware(
    observed: torch.Tensor, rendered: torch.Tensor, scale: float = OCCLUSION_SCALE, sigma: float = OCCLUSION_SIGMA
) -> torch.Tensor:
    """SMVR eq. 4, per element: s (o - r)^2 exp(-(o - r)^2 / sigma). It grows like a squared
    error for small differences, peaks at ``|o - r| = sqrt(sigma)``, then falls: large differences
    are taken for a different object in front of the hand and stop pulling."""
    squared = (observed - rendered) ** 2
    return scale * squared * torch.exp(-squared / sigma)


PHOTOMETRIC = {"mae": mae, "occlusion_aware": occlusion_aware}


def smooth_l1(target: torch.Tensor, estimate: torch.Tensor, gamma: float = JOINT_GAMMA_MM) -> torch.Tensor:
    """SMVR eq. 5, per coordinate: ``0.5 d^2 / gamma`` for ``|d| < gamma``, else ``|d| - 0.5 gamma``."""
    d = (target - estimate).abs()
    return torch.where(d < gamma, 0.5 * d * d / gamma, d - 0.5 * gamma)
