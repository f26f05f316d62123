"""The realistic benchmark's generator: a true hand the model cannot reach (the floor is above zero,
and only because of the mismatch), and image degradations that do what their settings say."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from handlib.data.interhand import InterHandReader
from handlib.data.mismatch import (
    Mismatch,
    Proportions,
    TrueSurface,
    deform_rest,
    draw_proportions,
    fit_to_surface,
    loop_subdivision,
    shaped_rest,
    true_model,
)
from handlib.data.realism import (
    IDEAL,
    Realism,
    defocus,
    jpeg_quality,
    miscalibrate,
    reprojection_rms,
    sensor_noise,
    working_volume,
)
from handlib.data.synth import HAND_CENTRE_MM, SynthSettings, read_truths, synthesize
from handlib.geometry.cameras import look_at_camera
from handlib.model.gestures import gesture_pose, model_hand_pose
from handlib.model.hand import HandModel, HandParams
from handlib.model.skeleton import FINGER_JOINTS

SAME = Proportions({f: 1.0 for f in FINGER_JOINTS}, {f: 1.0 for f in FINGER_JOINTS})


@pytest.fixture(scope="module")
def model():
    return HandModel("right")


def posed(model, betas, gesture="horns"):
    pose = model_hand_pose(model, gesture_pose(gesture, model.rest_joints))
    return HandParams.create(1, hand_pose=pose, betas=torch.tensor(betas, dtype=torch.float32)[None], transl=[0, 0, 1])


def true_vertices(model, params, betas, mismatch, rng, arch=None):
    proportions = draw_proportions(mismatch, rng)
    arch = mismatch.palm_arch if arch is None else arch
    hand = true_model(model, betas, deform_rest(model, shaped_rest(model, betas), proportions, arch))
    with torch.no_grad():
        return TrueSurface.of(model, mismatch.subdivide).model_vertices(hand(params).vertices[0])


def test_the_floor_is_above_zero_because_of_the_mismatch(model):
    rng = np.random.default_rng(11)  # a subject no notebook uses
    betas = rng.normal(scale=0.8, size=10)
    params = posed(model, betas)
    target = true_vertices(model, params, betas, Mismatch(), rng)
    _, floor = fit_to_surface(model, target, params)
    assert floor > 0.4, floor
    # Without the mismatch the same fit reaches the truth from 5 mm away: the floor is not the fit's.
    none = Mismatch(palm_arch=0.0, finger_length=0.0, finger_girth=0.0, subdivide=False)
    exact = true_vertices(model, params, betas, none, rng)
    start = HandParams(params.global_orient + 0.03, params.hand_pose + 0.05, params.betas + 0.5, params.transl + 0.002)
    with torch.no_grad():
        before = float((model(start).vertices[0] - exact).norm(dim=-1).mean())
    _, reached = fit_to_surface(model, exact, start)
    assert before > 5.0 and reached < 0.1, (before, reached)


def test_each_mismatch_alone_puts_the_truth_out_of_reach(model):
    rng = np.random.default_rng(12)
    betas = rng.normal(scale=0.8, size=10)
    params = posed(model, betas, "open")
    for alone in (
        Mismatch(palm_arch=0.2, finger_length=0.0, finger_girth=0.0, subdivide=False),
        Mismatch(palm_arch=0.0, finger_length=0.08, finger_girth=0.1, subdivide=False),
        Mismatch(palm_arch=0.0, finger_length=0.0, finger_girth=0.0, subdivide=True),
    ):
        _, floor = fit_to_surface(model, true_vertices(model, params, betas, alone, rng), params)
        assert floor > 0.15, (alone, floor)


def test_the_arch_bends_the_little_finger_toward_the_palm_and_leaves_the_index(model):
    from handlib.model.anatomy import palm_frame

    rest = shaped_rest(model, np.zeros(10))
    arched = deform_rest(model, rest, SAME, 0.3)
    joints = model.layer.J_regressor.double().numpy() @ rest
    palmar = palm_frame(joints).palmar
    tips = dict(zip(("thumb", "index", "middle", "ring", "pinky"), model.tip_vertex_ids))
    moved = {f: (arched[v] - rest[v]) * 1000 for f, v in tips.items()}
    assert moved["pinky"] @ palmar > 15.0  # mm toward the palm
    assert 0 < moved["ring"] @ palmar < moved["pinky"] @ palmar
    assert np.linalg.norm(moved["index"]) < 0.5 and np.linalg.norm(moved["thumb"]) < 0.5


def test_loop_subdivision_of_a_closed_mesh():
    # An octahedron: 6 vertices of valence 4, 12 edges, 8 faces.
    vertices = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    matrix, fine, _ = loop_subdivision(faces, 6)
    assert matrix.shape == (18, 6) and fine.shape == (32, 3)
    assert np.allclose(matrix.sum(1), 1.0)  # affine: a translation moves every new vertex alike
    new = matrix @ vertices
    # Even rule, valence 4 (beta = 3/32): (1 - 4 beta) of itself, beta of each neighbour (sum 0).
    assert np.allclose(new[0], [1 - 12 / 32, 0, 0])
    # Odd rule on edge 0-2: 3/8 of each end, 1/8 of the opposite corners 4 and 5 (which cancel).
    edge = [k for k in range(6, 18) if np.allclose(new[k], [3 / 8, 3 / 8, 0])]
    assert len(edge) == 1
    edges = np.sort(np.concatenate([fine[:, [0, 1]], fine[:, [1, 2]], fine[:, [2, 0]]]), 1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()  # still closed


def test_the_true_surface_is_closed_and_textured(model):
    true = TrueSurface.of(model, subdivide=True)
    faces = true.surface.faces.numpy()
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all() and not true.surface.loops
    assert len(faces) == 4 * len(true.base.faces)
    with torch.no_grad():
        vertices = model(HandParams.zeros()).vertices[0]
    shifted = true.model_vertices(vertices) - vertices
    assert 0.05 < float(shifted.norm(dim=-1).mean()) < 1.5  # smoothing moves the model's vertices a little


def test_sensor_noise_has_the_stated_variance():
    rng = np.random.default_rng(0)
    for level in (0.05, 0.5):
        clean = np.full((200, 200, 3), level, np.float32)
        noisy = sensor_noise(clean, 0.004, 0.0012, rng)
        expected = np.sqrt(0.004**2 + 0.0012 * level)
        assert abs((noisy - clean).std() / expected - 1) < 0.03
    assert sensor_noise(clean, 0.0, 0.0, rng) is clean


def test_defocus_widens_an_edge_by_its_sigma():
    step = np.zeros((9, 200, 3), np.float32)
    step[:, 100:] = 1.0
    for sigma in (2.0, 4.0):  # (below ~1 px the sampled edge's own width dominates)
        row = defocus(step, sigma)[4, :, 0]
        width = np.interp(0.9, row, np.arange(200)) - np.interp(0.1, row, np.arange(200))
        assert abs(width / (2.563 * sigma) - 1) < 0.1  # 10-90% width of a Gaussian-blurred step


def test_miscalibration_reprojects_the_stated_error():
    camera = look_at_camera("c", [0, -900, 1300], HAND_CENTRE_MM, [0, 0, 1])
    volume = working_volume(HAND_CENTRE_MM)
    for rms in (0.1, 0.3, 1.0):
        wrong = miscalibrate(camera, rms, volume, np.random.default_rng(int(rms * 10)))
        assert abs(reprojection_rms(camera, wrong, volume) - rms) < 0.01 * rms
        assert not np.allclose(wrong.camrot, camera.camrot)


def test_jpeg_quality_is_read_back(tmp_path):
    image = (np.random.default_rng(0).uniform(size=(64, 64, 3)) * 255).astype(np.uint8)
    for quality in (40, 75, 90, 97):
        path = tmp_path / f"q{quality}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert jpeg_quality(path) == quality
    cv2.imwrite(str(tmp_path / "x.png"), image)
    with pytest.raises(ValueError, match="x.png"):
        jpeg_quality(tmp_path / "x.png")


def test_a_realistic_capture(tmp_path, model):
    settings = SynthSettings(cameras=3, gestures=("open",), shrink=4, texture_size=64, spp=4, seed=7)
    ideal = synthesize(tmp_path / "ideal", settings, progress=False)
    real = synthesize(
        tmp_path / "real", SynthSettings(**{**settings.__dict__, "mismatch": Mismatch(), "realism": Realism()}), False
    )
    frames = {name: next(iter(InterHandReader(root, "test"))) for name, root in (("ideal", ideal), ("real", real))}
    scene = json.loads((real / "ground_truth" / "scene.json").read_text())
    (truth,) = read_truths(real).values()
    (ideal_truth,) = read_truths(ideal).values()
    assert truth.floor > 0.3 and ideal_truth.floor == 0.0
    assert abs(scene["initial_vertex_error_mm"]["0"][str(frames["real"].frame)] - 5.0) < 0.2  # against the truth
    # The true joints are the true surface's, not the closest model hand's.
    assert torch.allclose(truth.joints21, model.regressor21 @ truth.vertices, atol=1e-3)
    # The written calibration is off by the stated error; the true one is kept.
    for name, camera in frames["real"].cameras.items():
        true = frames["ideal"].cameras[name]
        assert np.allclose(scene["cameras"][name]["camrot"], true.camrot)
        error = reprojection_rms(true, camera, working_volume(HAND_CENTRE_MM)) * settings.shrink
        assert abs(error - Realism().calibration_px) < 0.01
        assert abs(scene["calibration_error_px"][name] - error) < 1e-6
    image = next(iter(sorted((real / "images").rglob("*.jpg"))))
    assert jpeg_quality(image) == Realism().jpeg_quality
    # The backdrop is not one colour; the ideal one is (away from the hand, up to JPEG).
    for name, spread in (("ideal", 3.0), ("real", 6.0)):
        frame = frames[name]
        camera = sorted(frame.cameras)[0]
        border = frame.image(camera)[:8].reshape(-1, 3).astype(float)
        assert (border.std(0).max() < spread) == (name == "ideal"), (name, border.std(0))
    assert IDEAL == SynthSettings().realism


def test_a_floor_is_fitted_once_per_truth_and_handed_out_as_a_copy():
    from handlib.data.mismatch import fit_to_surface

    model = HandModel("right")
    start = HandParams.create(1, transl=[0.0, 0.0, 1.0])
    target = model(HandParams.create(1, hand_pose=0.1 * torch.ones(1, 45), transl=[0.0, 0.0, 1.0])).vertices[0]
    first, reached = fit_to_surface(model, target.detach() + 0.5, start, iterations=20)
    first.hand_pose.add_(1.0)  # a caller changing its copy
    again, reached_again = fit_to_surface(model, target.detach() + 0.5, start, iterations=20)
    assert reached_again == reached and torch.equal(again.hand_pose + 1.0, first.hand_pose)
    _, elsewhere = fit_to_surface(model, target.detach() + 3.0, start, iterations=20)
    assert elsewhere != reached
