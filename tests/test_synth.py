"""Synthetic captures: reproducible, readable by the InterHand2.6M reader, noise as requested."""

import json

import numpy as np
import pytest
import torch

from handlib.cli import main
from handlib.data.interhand import InterHandReader, annotation_path
from handlib.data.synth import SynthSettings, colour_responses, perturb, sequence_poses, studio_light, synthesize
from handlib.model.gestures import GESTURES, gesture_pose
from handlib.model.hand import HandModel, HandParams
from handlib.rendering import lighting

TINY = dict(cameras=3, shrink=4, texture_size=64, spp=2)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    out = tmp_path_factory.mktemp("capture")
    settings = SynthSettings(
        gestures=("open", "point"), frames=3, noise_mm=4.0, seed=3, occluded_views=0.5, colour_response=0.02, **TINY
    )
    return synthesize(out, settings, progress=False), settings


def test_capture_reads_back_with_its_ground_truth(capture):
    out, settings = capture
    reader = InterHandReader(out, "test")
    frames = list(reader)
    assert len(frames) == 3 and reader.skipped == []
    scene = json.loads((out / "ground_truth" / "scene.json").read_text())
    truth = json.loads((out / "ground_truth" / "MANO_NeuralAnnot.json").read_text())
    joints = json.loads((out / "ground_truth" / "joint_3d.json").read_text())
    model = HandModel("right")
    indices = [f.frame for f in frames]
    assert indices == sorted(indices) and len(set(np.diff(indices))) >= 1  # irregular gaps allowed
    for frame in frames:
        assert set(frame.cameras) == set(scene["cameras"]) and len(frame.image_paths) == 3
        for name, camera in frame.cameras.items():
            for key, value in scene["cameras"][name].items():
                assert np.array_equal(np.asarray(value), getattr(camera, key))
            image = frame.image(name)
            assert image.shape == (camera.height, camera.width, 3) and image.max() > 60  # the hand is there
        true = HandParams.from_interhand(truth["0"][str(frame.frame)]["right"])
        noisy = frame.hand_params("right")
        with torch.no_grad():
            error = (model(noisy).vertices - model(true).vertices).norm(dim=-1).mean().item()
        assert abs(error - 4.0) <= 0.2  # within 5% of the requested noise level
        assert frame.mano["left"] is None
        true_joints = np.asarray(joints["0"][str(frame.frame)]["world_coord"])
        assert frame.joint_valid[:21].all() and not frame.joint_valid[21:].any()
        assert 0 < np.linalg.norm(frame.joints[:21] - true_joints[:21], axis=1).mean() < 12.0
    assert (out / "ground_truth" / "textures" / "capture0.npy").is_file()


def test_same_seed_same_capture(capture, tmp_path):
    out, settings = capture
    again = synthesize(tmp_path, settings, progress=False)
    for kind in ("data", "camera", "joint_3d", "MANO_NeuralAnnot"):
        assert annotation_path(out, "test", kind).read_text() == annotation_path(again, "test", kind).read_text()
    first = sorted((out / "images").rglob("*.jpg"))
    assert [p.read_bytes() for p in first] == [(again / p.relative_to(out)).read_bytes() for p in first]


@pytest.mark.parametrize("noise_mm", [1.0, 5.0, 15.0])
def test_noise_level_is_mean_vertex_distance(noise_mm):
    model = HandModel("right")
    params = HandParams.create(1, transl=torch.tensor([[0.0, 0.0, 1.0]]))
    noisy, reached = perturb(model, params, noise_mm, np.random.default_rng(int(noise_mm)))
    with torch.no_grad():
        distance = (model(noisy).vertices - model(params).vertices).norm(dim=-1).mean().item()
    assert abs(distance - noise_mm) <= 0.05 * noise_mm and abs(distance - reached) < 1e-4


def test_gestures_are_distinct_and_fist_curls():
    model = HandModel("right", flat_hand_mean=True)
    poses = {name: gesture_pose(name, model.rest_joints) for name in GESTURES}
    assert len(GESTURES) >= 8
    names = list(poses)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(poses[a] - poses[b]).max() > 0.1, (a, b)

    def tip_to_wrist(name):
        out = model(HandParams.create(1, hand_pose=torch.tensor(poses[name], dtype=torch.float32)[None]))
        return (out.joints21[0, [4, 8, 12, 16]] - out.joints21[0, 20]).norm(dim=-1).mean().item()

    assert tip_to_wrist("fist") < 0.6 * tip_to_wrist("open")


def test_a_motion_stretch_samples_the_same_path():
    model = HandModel("right")
    whole, _, _, _ = sequence_poses(model, ("ok", "fist"), 10, np.random.default_rng(0))
    middle, _, _, _ = sequence_poses(model, ("ok", "fist"), 2, np.random.default_rng(0), motion=(4 / 9, 5 / 9))
    np.testing.assert_allclose(middle, whole[4:6], atol=1e-12)
    # Between those two samples the pose moves a ninth of the way or more (the middle is the fastest).
    assert np.abs(middle[1] - middle[0]).max() > np.abs(whole[-1] - whole[0]).max() / 9
    assert np.abs(middle[1] - middle[0]).max() < np.abs(whole[-1] - whole[0]).max() / 4
    with pytest.raises(ValueError, match="motion is a stretch"):
        SynthSettings(frames=2, motion=(0.6, 0.5))


def test_light_is_physical_and_responses_near_identity():
    rng = np.random.default_rng(0)
    for strength in (0.0, 0.5, 1.0):
        light = studio_light(strength, rng)
        d = torch.randn(20000, 3)
        assert lighting.radiance(light, d / d.norm(dim=1, keepdim=True)).min() >= -1e-6
    responses = colour_responses(5, 0.02, rng)
    assert responses.shape == (5, 3, 4) and np.abs(responses[:, :, :3] - np.eye(3)).max() < 0.15


def test_bad_settings_and_cli(tmp_path, capsys):
    with pytest.raises(ValueError, match="Unknown gesture 'wave'"):
        SynthSettings(gestures=("wave",))
    assert main(["synth", "--out", str(tmp_path / "x"), "--gestures", "open,wave"]) == 2
    assert "Unknown gesture" in capsys.readouterr().err
    assert (
        main(
            [
                "synth",
                "--out",
                str(tmp_path / "c"),
                "--cameras",
                "2",
                "--shrink",
                "4",
                "--texture-size",
                "32",
                "--spp",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert len(list(InterHandReader(tmp_path / "c", "test"))) == 1
    realistic = ["synth", "--out", str(tmp_path / "r"), "--cameras", "2", "--shrink", "4", "--texture-size", "32"]
    assert main([*realistic, "--spp", "1", "--quiet", "--realistic"]) == 0
    scene = json.loads((tmp_path / "r" / "ground_truth" / "scene.json").read_text())
    assert scene["settings"]["mismatch"] is not None and min(scene["floor_vertex_error_mm"]["0"].values()) > 0.3
