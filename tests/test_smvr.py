"""SMVR: the error functions, and a smoke-sized refinement that must reduce the error.

The refinement case (gesture "three", seed 7, 4 cameras at a quarter of the resolution)
is not the one the default learning rates were chosen on ("open", seed 0, 8 cameras).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from handlib.data.interhand import InterHandReader
from handlib.data.synth import SynthSettings, synthesize
from handlib.methods import losses, metrics
from handlib.methods.schedule import SMVR_SCHEDULE, diverging, scaled, total_iterations
from handlib.methods.smvr import SMVRResult, SMVRSettings, refine_frame
from handlib.model.hand import HandModel, HandParams


def test_error_functions():
    o = torch.tensor([0.5, 0.5, 0.5, 0.5], dtype=torch.float64)
    r = torch.tensor([0.5, 0.6, 1.0, 0.0], dtype=torch.float64, requires_grad=True)
    assert torch.allclose(losses.mae(o, r), torch.tensor([0.0, 0.1, 0.5, 0.5], dtype=torch.float64))
    f = losses.occlusion_aware(o, r)
    assert f[0] == 0 and torch.isclose(f[1], torch.tensor(10 * 0.01 * np.exp(-0.04), dtype=torch.float64))
    # Peaks at |o - r| = sqrt(sigma) = 0.5 and falls beyond: a far-off colour pulls less.
    d = torch.linspace(0, 1, 101, dtype=torch.float64)
    values = losses.occlusion_aware(torch.zeros_like(d), d)
    assert abs(d[values.argmax()].item() - 0.5) < 0.011
    assert torch.autograd.gradcheck(lambda x: losses.occlusion_aware(o, x), (r,))
    j = torch.tensor([0.0, 3.0, 10.0], dtype=torch.float64, requires_grad=True)
    assert torch.allclose(
        losses.smooth_l1(torch.zeros(3, dtype=torch.float64), j), torch.tensor([0.0, 0.9, 7.5], dtype=torch.float64)
    )
    assert torch.autograd.gradcheck(lambda x: losses.smooth_l1(torch.zeros(3, dtype=torch.float64), x), (j,))


def test_finger_errors_put_the_error_on_the_finger_that_moved():
    truth = torch.randn(21, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 50
    moved = truth.clone()
    moved[4] += torch.tensor([0.0, 8.0, 0.0], dtype=torch.float64)  # InterHand2.6M: joint 4 is the index tip
    moved[20] += torch.tensor([3.0, 0.0, 4.0], dtype=torch.float64)  # the wrist, 5 mm
    errors = metrics.finger_errors(moved, truth)
    assert set(errors) == {"thumb", "index", "middle", "ring", "pinky", "wrist"}
    assert errors["index"] == pytest.approx(2.0) and errors["wrist"] == pytest.approx(5.0)
    assert all(errors[f] == 0.0 for f in ("thumb", "middle", "ring", "pinky"))
    # their joint-weighted mean is eps_j
    weighted = (4 * sum(errors[f] for f in ("thumb", "index", "middle", "ring", "pinky")) + errors["wrist"]) / 21
    assert weighted == pytest.approx(metrics.joint_error(moved, truth))
    with pytest.raises(ValueError, match=r"\(21, 3\)"):
        metrics.finger_errors(moved[:16], truth[:16])


def test_paper_schedule_has_230_iterations():
    assert total_iterations(SMVR_SCHEDULE) == 230
    assert [s.iterations for s in SMVR_SCHEDULE] == [20, 80, 20, 80, 20, 10]
    with pytest.raises(ValueError, match="loss must be one of"):
        SMVRSettings(loss="l2")
    assert diverging(float("nan"), 1.0, 10.0) and diverging(10.5, 1.0, 10.0) and not diverging(9.5, 1.0, 10.0)


def smoke_frame(folder: Path) -> dict:
    """The smoke case: gesture "three", seed 7, 4 cameras at a quarter of the resolution, 5 mm off."""
    out = synthesize(
        folder,
        SynthSettings(cameras=4, gestures=("three",), shrink=4, spp=8, texture_size=256, noise_mm=5.0, seed=7),
        progress=False,
    )
    frame = next(iter(InterHandReader(out, "test")))
    truth = HandParams.from_interhand(
        json.loads((out / "ground_truth" / "MANO_NeuralAnnot.json").read_text())["0"][str(frame.frame)]["right"]
    )
    cameras = list(frame.cameras.values())
    return {
        "model": HandModel("right"),
        "cameras": cameras,
        "images": [frame.image(c.name) for c in cameras],
        "initial": frame.hand_params("right"),
        "joints": torch.tensor(frame.joints[:21]),
        "joint_valid": torch.tensor(frame.joint_valid[:21]),
        "truth": truth,
    }


def smoke_refinement(case: dict, seed: int = 0) -> tuple[float, float, SMVRResult]:
    """Vertex error before and after a quarter of SMVR's schedule (57 iterations), and the result;
    ``seed`` is the Monte Carlo seed (``benchmarks/test_margins.py`` measures the spread over seeds)."""
    model, truth = case["model"], case["truth"]
    result = refine_frame(
        model,
        case["cameras"],
        case["images"],
        case["initial"],
        case["joints"],
        case["joint_valid"],
        SMVRSettings(schedule=scaled(SMVR_SCHEDULE, 0.25), texture_size=256, seed=seed),
        truth=truth,
    )
    with torch.no_grad():
        before = (model(case["initial"]).vertices - model(truth).vertices).norm(dim=-1).mean().item()
        after = (model(result.params).vertices - model(truth).vertices).norm(dim=-1).mean().item()
    return before, after, result


@pytest.mark.slow
def test_smoke_refinement_reduces_vertex_error(tmp_path):
    before, after, result = smoke_refinement(smoke_frame(tmp_path))
    assert abs(before - 5.0) < 0.3
    # Measured over Monte Carlo seeds 0-7 (benchmarks/test_margins.py): after / before 0.61 +- 0.045,
    # worst 0.68, so the bound 0.85 is 5.3 sd away; the backprojection error's last / first ratio
    # 0.794 +- 0.013, worst 0.815, so 0.9 is 8.4 sd away (it was 1.05: a refinement that made the
    # images match worse passed).
    assert after < 0.85 * before, (before, after)
    assert result.history[-1]["backprojection"] < 0.9 * result.history[0]["backprojection"]
    assert not result.diverged and len(result.history) == 57


@pytest.mark.slow
def test_refine_command_writes_interhand_annotations(tmp_path):
    from handlib.cli import main

    data = synthesize(
        tmp_path / "capture",
        SynthSettings(cameras=3, gestures=("fist",), shrink=4, spp=4, texture_size=64, seed=2),
        progress=False,
    )
    frame = next(iter(InterHandReader(data, "test")))
    args = [
        "refine",
        "--data",
        str(data),
        "--capture",
        "0",
        "--seq",
        frame.seq_name,
        "--frame",
        str(frame.frame),
        "--schedule-scale",
        "0.05",
        "--out",
        str(tmp_path / "out"),
        "--quiet",
    ]
    assert main(args) == 0
    written = json.loads((tmp_path / "out" / "MANO_NeuralAnnot.json").read_text())
    refined = HandParams.from_interhand(written["0"][str(frame.frame)]["right"])
    assert written["0"][str(frame.frame)]["left"] is None and refined.hand_pose.shape == (1, 45)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert len(metrics["history"]) == 12 and (tmp_path / "out" / "colour_map.png").is_file()
    assert main(args[:8] + ["999"] + args[9:]) == 2  # a frame that does not exist
