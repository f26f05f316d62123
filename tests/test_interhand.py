"""InterHand2.6M layout: a hand-written fixture following the published schema, the
writer's output read back, and every per-frame problem recorded rather than dropped."""

import json

import cv2
import numpy as np
import pytest
import torch

from handlib.data.interhand import (
    InterHandReader,
    InterHandWriter,
    annotation_path,
    image_relpath,
    mano_entry,
    write_mano_annotations,
)
from handlib.geometry.cameras import dome_cameras
from handlib.model.hand import HandParams

ROTATION = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def write_fixture(root, split="test"):
    """Two cameras (portrait 400262, landscape 400263) of Capture0, sequence ROM03, frames 21640
    and 21641; frame 21640 has a right hand, a null left hand and joint 3 invalid; frame 21641
    a left hand only."""
    images = []
    for index, (cam, size) in enumerate([("400262", (334, 512)), ("400263", (512, 334))] * 2):
        frame = 21640 if index < 2 else 21641
        images.append(
            {
                "id": index,
                "file_name": f"Capture0/ROM03_RT_No_Occlusion/cam{cam}/image{frame}.jpg",
                "width": size[0],
                "height": size[1],
                "capture": 0,
                "subject": 0,
                "seq_name": "ROM03_RT_No_Occlusion",
                "camera": cam,
                "frame_idx": frame,
            }
        )
    annotations = [
        {
            "id": i,
            "image_id": i,
            "bbox": [10.0, 20.0, 100.0, 120.0],
            "joint_valid": [[1]] * 42,
            "hand_type": "right",
            "hand_type_valid": 1,
        }
        for i in range(4)
    ]
    camera = {
        "0": {
            "campos": {"400262": [0.0, 0.0, -1000.0], "400263": [100.0, 0.0, -1000.0]},
            "camrot": {"400262": ROTATION, "400263": ROTATION},
            "focal": {"400262": [1240.5, 1241.0], "400263": [1238.0, 1237.5]},
            "princpt": {"400262": [167.0, 256.0], "400263": [256.0, 167.0]},
        }
    }
    valid = [[1]] * 42
    valid[3] = [0]
    joints = {
        "0": {
            "21640": {
                "world_coord": np.arange(126.0).reshape(42, 3).tolist(),
                "joint_valid": valid,
                "hand_type": "right",
                "hand_type_valid": 1,
            },
            "21641": {
                "world_coord": np.ones((42, 3)).tolist(),
                "joint_valid": [[1]] * 42,
                "hand_type": "right",
                "hand_type_valid": 1,
            },
        }
    }
    right = {"pose": [0.1] * 48, "shape": [0.2] * 10, "trans": [0.01, 0.02, 0.03]}
    left = {"pose": [-0.1] * 48, "shape": [0.3] * 10, "trans": [-0.01, 0.02, 0.5]}
    mano = {"0": {"21640": {"right": right, "left": None}, "21641": {"right": None, "left": left}}}
    for kind, value in (
        ("data", {"images": images, "annotations": annotations}),
        ("camera", camera),
        ("joint_3d", joints),
        ("MANO_NeuralAnnot", mano),
    ):
        path = annotation_path(root, split, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    for record in images:
        path = root / "images" / split / record["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.full((record["height"], record["width"], 3), 90, np.uint8))


def test_reads_the_published_schema(tmp_path):
    write_fixture(tmp_path)
    reader = InterHandReader(tmp_path, "test")
    frames = list(reader)
    assert [f.key for f in frames] == [(0, "ROM03_RT_No_Occlusion", 21640), (0, "ROM03_RT_No_Occlusion", 21641)]
    frame = frames[0]
    portrait, landscape = frame.cameras["400262"], frame.cameras["400263"]
    assert (portrait.width, portrait.height, landscape.width, landscape.height) == (334, 512, 512, 334)
    assert np.allclose(landscape.focal, [1238.0, 1237.5]) and np.allclose(landscape.campos, [100, 0, -1000])
    assert frame.mano["left"] is None and frame.hand_params("left") is None
    params = frame.hand_params("right")
    assert torch.allclose(params.transl, torch.tensor([[0.01, 0.02, 0.03]]))
    assert params.hand_pose.shape == (1, 45)
    assert frame.joints.shape == (42, 3) and frame.joints[1, 0] == 3.0
    assert frame.joint_valid.sum() == 41 and not frame.joint_valid[3]
    assert frame.image("400263").shape == (334, 512, 3)
    second = frames[1]
    assert second.mano["right"] is None and second.hand_type == "right"
    assert torch.allclose(second.hand_params("left").betas, torch.full((1, 10), 0.3))
    assert reader.skipped == []


def test_writer_round_trip(tmp_path):
    cameras = dome_cameras(3, [0.0, 0.0, 0.0], jitter_px=5.0)
    writer = InterHandWriter(tmp_path, "val")
    rng = np.random.default_rng(0)
    truth = {}
    for frame in (5, 9):
        params = HandParams.create(
            1,
            hand_pose=torch.tensor(rng.normal(size=(1, 45)), dtype=torch.float32),
            transl=torch.tensor([[0.0, 0.01 * frame, 0.9]]),
        )
        joints = rng.normal(size=(42, 3)) * 50
        images = {}
        for c in cameras:  # smooth images: JPEG keeps them to within a few levels
            rows, cols = np.mgrid[0 : c.height, 0 : c.width]
            images[c.name] = np.stack(
                [rows * 255 // c.height, cols * 255 // c.width, np.full_like(rows, 40 * frame % 255)], -1
            ).astype(np.uint8)
        writer.add_frame(
            7, "synthetic_seq", frame, cameras, images, {"right": mano_entry(params), "left": None}, joints, np.ones(42)
        )
        truth[frame] = (params, joints, images)
    writer.close()
    reader = InterHandReader(tmp_path, "val")
    assert len(reader) == 2
    for frame in reader:
        params, joints, images = truth[frame.frame]
        for camera in cameras:
            read = frame.cameras[camera.name]
            for name in ("campos", "camrot", "focal", "princpt"):
                assert np.array_equal(getattr(read, name), getattr(camera, name))
            assert (read.width, read.height) == (camera.width, camera.height)
            # JPEG: close, not identical.
            assert np.abs(frame.image(camera.name).astype(int) - images[camera.name]).mean() < 2
        assert np.array_equal(frame.joints, joints)
        read_params = frame.hand_params("right")
        assert torch.equal(read_params.hand_pose, params.hand_pose)
        assert torch.equal(read_params.transl, params.transl)
        assert frame.mano["left"] is None


def test_missing_annotation_file_names_the_file(tmp_path):
    write_fixture(tmp_path)
    annotation_path(tmp_path, "test", "joint_3d").unlink()
    with pytest.raises(FileNotFoundError, match="InterHand2.6M_test_joint_3d.json"):
        InterHandReader(tmp_path, "test")


def test_per_frame_problems_are_recorded(tmp_path):
    write_fixture(tmp_path)
    calibration = json.loads(annotation_path(tmp_path, "test", "camera").read_text())
    for name in ("campos", "camrot", "focal", "princpt"):
        del calibration["0"][name]["400263"]
    annotation_path(tmp_path, "test", "camera").write_text(json.dumps(calibration))
    joints = json.loads(annotation_path(tmp_path, "test", "joint_3d").read_text())
    joints["0"]["21641"]["world_coord"][0][0] = float("nan")
    annotation_path(tmp_path, "test", "joint_3d").write_text(json.dumps(joints))  # Python's json writes NaN
    (tmp_path / "images" / "test" / image_relpath(0, "ROM03_RT_No_Occlusion", "400262", 21640)).unlink()
    reader = InterHandReader(tmp_path, "test")
    frames = list(reader)
    assert [f.frame for f in frames] == [21640]
    assert set(frames[0].cameras) == {"400262"} and frames[0].image_paths == {}
    reasons = " | ".join(reason for _, reason in reader.skipped)
    assert "400263" in reasons and "calibration entry" in reasons
    assert "image missing" in reasons
    assert "NaN" in reasons and "21641" in reasons
    with pytest.raises(ValueError, match="no image for camera"):
        frames[0].image("400262")


def test_nan_mano_parameters_refuse_that_hand_only(tmp_path):
    write_fixture(tmp_path)
    mano = json.loads(annotation_path(tmp_path, "test", "MANO_NeuralAnnot").read_text())
    mano["0"]["21640"]["right"]["trans"][1] = float("nan")
    annotation_path(tmp_path, "test", "MANO_NeuralAnnot").write_text(json.dumps(mano))
    reader = InterHandReader(tmp_path, "test")
    frames = {f.frame: f for f in reader}
    assert sorted(frames) == [21640, 21641] and not reader.skipped  # the frame (and any other hand) stays
    assert frames[21640].mano["right"] is None and "right" not in frames[21641].invalid
    assert "MANO_NeuralAnnot.json capture 0 frame 21640 right" in frames[21640].invalid["right"]
    assert "NaN" in frames[21640].invalid["right"] and not frames[21641].invalid


def test_corrupt_image_names_the_file(tmp_path):
    write_fixture(tmp_path)
    path = tmp_path / "images" / "test" / image_relpath(0, "ROM03_RT_No_Occlusion", "400262", 21640)
    path.write_bytes(b"not a jpeg")
    frame = next(iter(InterHandReader(tmp_path, "test")))
    with pytest.raises(ValueError, match="image21640.jpg"):
        frame.image("400262")


def test_refined_annotations_refuse_nan(tmp_path):
    entry = {"pose": [0.0] * 48, "shape": [0.0] * 10, "trans": [0.0, 0.0, float("nan")]}
    with pytest.raises(ValueError, match="0/12/right"):
        write_mano_annotations(tmp_path / "out.json", {0: {12: {"right": entry, "left": None}}})
    entry["trans"][2] = 0.5
    write_mano_annotations(tmp_path / "out.json", {0: {12: {"right": entry}}})
    assert json.loads((tmp_path / "out.json").read_text()) == {"0": {"12": {"right": entry, "left": None}}}
