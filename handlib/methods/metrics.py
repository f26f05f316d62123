"""Error metrics of SMVR (section 4.1) and DMVR (4.1.1), one implementation for tests, notebooks and the CLI."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from handlib.model.hand import HandOutput, Truth, as_truth  # noqa: F401  (Truth: what errors are measured against)
from handlib.model.skeleton import INTERHAND_JOINTS, TIP_ORDER


def vertex_error(vertices: torch.Tensor, truth: torch.Tensor) -> float:
    """eps_v: mean per-vertex Euclidean distance (mm) between (V, 3) meshes."""
    return float((vertices - truth).norm(dim=-1).mean())


def joint_error(joints: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """eps_j: mean Euclidean distance (mm) over the valid joints of (J, 3) sets."""
    distance = (joints - truth).norm(dim=-1)
    if valid is not None:
        distance = distance[valid.to(torch.bool)]
    return float(distance.mean()) if distance.numel() else float("nan")


def finger_errors(joints: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """Where a hand's error lies: the mean distance (mm) over each finger's four joints (tip to
    base) and at the wrist, for (21, 3) joint sets in InterHand2.6M's order; keys thumb, index,
    middle, ring, pinky, wrist. Their joint-weighted mean is eps_j."""
    if joints.shape != (len(INTERHAND_JOINTS), 3) or truth.shape != joints.shape:
        raise ValueError(
            f"finger_errors takes two (21, 3) joint sets in InterHand2.6M order, got {tuple(joints.shape)} "
            f"and {tuple(truth.shape)}."
        )
    distance = (joints - truth).norm(dim=-1)
    groups = {finger: [k for k, name in enumerate(INTERHAND_JOINTS) if name[:-1] == finger] for finger in TIP_ORDER}
    groups["wrist"] = [INTERHAND_JOINTS.index("wrist")]
    return {name: float(distance[indices].mean()) for name, indices in groups.items()}


def errors_against(output: HandOutput, truth: Truth) -> tuple[float, float]:
    """(eps_v, eps_j) in mm of the first hand of ``output`` against ``truth``."""
    return vertex_error(output.vertices[0], truth.vertices), joint_error(output.joints21[0], truth.joints21)


def backprojection_error(
    observed: Sequence[torch.Tensor],
    rendered: Sequence[torch.Tensor],
    alphas: Sequence[torch.Tensor],
    coverage: float = 0.5,
) -> float:
    """Mean absolute difference in intensity levels (0-255, averaged over RGB) between observed
    and rendered images (each (H, W, 3) in [0, 1]) over hand pixels: those the rendered hand
    covers at least ``coverage``."""
    sums = _backprojection_sums(observed, rendered, alphas, coverage)
    count = sum(n for _, n in sums)
    return sum(t for t, _ in sums) / count if count else float("nan")


def backprojection_errors(
    observed: Sequence[torch.Tensor],
    rendered: Sequence[torch.Tensor],
    alphas: Sequence[torch.Tensor],
    coverage: float = 0.5,
) -> list[float]:
    """:func:`backprojection_error` of each view alone (NaN for a view the hand does not cover):
    what lets a curator see one camera disagree with the others."""
    return [t / n if n else float("nan") for t, n in _backprojection_sums(observed, rendered, alphas, coverage)]


def _backprojection_sums(observed, rendered, alphas, coverage) -> list[tuple[float, int]]:
    """Per view: the summed absolute difference (levels, RGB-averaged) over hand pixels, their count."""
    sums = []
    for o, r, a in zip(observed, rendered, alphas):
        mask = a >= coverage
        sums.append((float((o - r).abs()[mask].sum()) * 255.0 / 3.0, int(mask.sum())))
    return sums


def robust_psnr(
    reference: torch.Tensor, estimate: torch.Tensor, mask: torch.Tensor | None = None, peak: float = 1.0
) -> float:
    """DMVR eq. 5: the PSNR (dB) of ``estimate`` against ``reference`` (both (..., 3)) after the
    least-squares 3x4 linear colour transform of the estimate onto the reference, over the
    ``mask`` (..., ) elements (all by default). Invariant to global tone and intensity."""
    ref = reference.reshape(-1, 3).double()
    est = estimate.reshape(-1, 3).double()
    if mask is not None:
        keep = mask.reshape(-1).bool()
        ref, est = ref[keep], est[keep]
    if len(ref) < 4:
        raise ValueError("robust_psnr needs at least 4 pixels to fit a 3x4 colour transform.")
    design = torch.cat([est, torch.ones(len(est), 1, dtype=est.dtype)], 1)
    transform = torch.linalg.lstsq(design, ref).solution  # (4, 3)
    mse = float(((design @ transform - ref) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * math.log10(peak**2 / mse)
