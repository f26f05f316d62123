"""The numbers behind "the filter's range kernel is per angle" on the book's Differences page.

DMVR's temporal prior filters the articulation a (T, 45) with a bilateral filter whose range
kernel has sigma = 0.6. The paper does not say whether that kernel acts on each angle or on the
distance between whole 45-angle vectors. This script measures both readings on synthetic
annotations (InterHand2.6M layout, 10 mm of noise, ideal captures: only the annotations matter):
a held gesture (5 frames) and a gesture change (3 frames), over several seeds. Per reading: the
neighbouring annotations' distance (rad: whole vectors, or the mean per angle), the range weight
that distance gets, the prior ||a - BF(a)|| of the annotations, and how much closer to the truth
filtering moves them (percent of the mean per-angle error). Rows go to
``benchmarks/differences_filter.csv``.

    python benchmarks/differences_filter.py
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import append_rows, machine  # noqa: E402  (shared with the renderer benchmark)

CASES = {"held gesture": (("ok", "ok"), 5), "gesture change": (("ok", "fist"), 3)}
SEEDS = (101, 102, 103)


def per_vector_filter(signal: torch.Tensor, sigma: float, temporal_sigma: float, window: int) -> torch.Tensor:
    """The other reading: one range weight per pair of samples, from the distance of whole vectors."""
    out = torch.empty_like(signal)
    half = window // 2
    for t in range(len(signal)):
        near = range(max(0, t - half), min(len(signal), t + half + 1))
        weights = torch.stack(
            [
                torch.exp(torch.tensor(-((t - k) ** 2) / (2 * temporal_sigma**2), dtype=signal.dtype))
                * torch.exp(-((signal[t] - signal[k]).norm() ** 2) / (2 * sigma**2))
                for k in near
            ]
        )
        out[t] = (weights[:, None] * signal[list(near)]).sum(0) / weights.sum()
    return out


def annotations(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, 45) articulation of the noisy annotations and of the truth, in frame order."""

    def read(path: Path) -> torch.Tensor:
        entries = json.loads(path.read_text())["0"]
        return torch.tensor([entries[k]["right"]["pose"][3:] for k in sorted(entries, key=int)], dtype=torch.float64)

    noisy = next((root / "annotations").rglob("*MANO_NeuralAnnot.json"))
    return read(noisy), read(root / "ground_truth" / "MANO_NeuralAnnot.json")


def main() -> None:
    from handlib.data.synth import SynthSettings, synthesize
    from handlib.methods.temporal import SIGMA, TEMPORAL_SIGMA, WINDOW, bilateral_filter

    rows = []
    for name, (gestures, frames) in CASES.items():
        for seed in SEEDS:
            root = Path(tempfile.mkdtemp()) / "capture"
            settings = SynthSettings(
                cameras=1, gestures=gestures, frames=frames, noise_mm=10.0, seed=seed, spp=1, texture_size=64, shrink=8
            )
            synthesize(root, settings, progress=False)
            noisy, truth = annotations(root)
            times = torch.arange(len(noisy), dtype=torch.float64)
            error = (noisy - truth).abs().mean()
            steps = noisy[1:] - noisy[:-1]
            for reading, filtered, distance in (
                ("per vector", per_vector_filter(noisy, SIGMA, TEMPORAL_SIGMA, WINDOW), steps.norm(dim=1)),
                ("per angle", bilateral_filter(noisy, times), steps.abs().mean(1)),
            ):
                weight = torch.exp(-(distance**2) / (2 * SIGMA**2))
                rows.append(
                    {
                        "case": name,
                        "seed": seed,
                        "reading": reading,
                        "neighbour_distance_rad": round(float(distance.mean()), 3),
                        "range_weight": round(float(weight.mean()), 3),
                        "prior": round(float((noisy - filtered).norm()), 3),
                        "closer_to_truth_percent": round(float(100 * (1 - (filtered - truth).abs().mean() / error)), 1),
                        "machine": machine(),
                    }
                )
                print(rows[-1], flush=True)
    print(f"a joint that moves 1 rad between samples keeps weight {math.exp(-1 / (2 * SIGMA**2)):.2f} per angle")
    append_rows(Path(__file__).with_suffix(".csv"), rows)


if __name__ == "__main__":
    main()
