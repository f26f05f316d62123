"""InterHand2.6M cameras: projection agrees with OpenCV; bad calibrations are refused."""

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from handlib.geometry.cameras import Camera


def random_camera(rng, portrait):
    """A camera ~1 m from the origin looking at it, fx != fy, off-centre principal point."""
    eye = rng.normal(size=3)
    eye = 1000.0 * eye / np.linalg.norm(eye)
    forward = -eye / np.linalg.norm(eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])  # world -> camera rows
    width, height = (334, 512) if portrait else (512, 334)
    fx = rng.uniform(1100, 1300)
    return Camera(
        "400262",
        eye,
        rot,
        [fx, fx * rng.uniform(0.97, 1.03)],
        [width / 2 + rng.uniform(-20, 20), height / 2 + rng.uniform(-20, 20)],
        width,
        height,
    )


@pytest.mark.parametrize("portrait", [True, False])
def test_projection_matches_opencv(portrait):
    rng = np.random.default_rng(7 if portrait else 8)
    camera = random_camera(rng, portrait)
    points = rng.normal(scale=80.0, size=(500, 3))  # a hand-sized cloud at the origin (mm)
    pixels, depth = camera.project(points)
    rvec, _ = cv2.Rodrigues(camera.camrot)
    tvec = -camera.camrot @ camera.campos
    expected, _ = cv2.projectPoints(points, rvec, tvec, camera.intrinsics, np.zeros(5))
    np.testing.assert_allclose(pixels, expected[:, 0, :], atol=1e-6)
    assert (np.abs(depth - 1000.0) < 400.0).all()  # in front of the camera, about a metre away
    # The torch path gives the same pixels and gradients flow to the points.
    tpoints = torch.tensor(points, requires_grad=True)
    tpixels, _ = camera.project(tpoints)
    np.testing.assert_allclose(tpixels.detach().numpy(), pixels, atol=1e-9)
    tpixels.sum().backward()
    assert torch.isfinite(tpoints.grad).all() and tpoints.grad.abs().sum() > 0


def test_interhand_round_trip():
    camera = random_camera(np.random.default_rng(3), True)
    calibration = {key: {camera.name: value} for key, value in camera.to_interhand().items()}
    again = Camera.from_interhand(calibration, camera.name, camera.width, camera.height)
    for key in ("campos", "camrot", "focal", "princpt"):
        np.testing.assert_array_equal(getattr(again, key), getattr(camera, key))
    with pytest.raises(ValueError, match="Camera '999' has no calibration entry"):
        Camera.from_interhand(calibration, "999", 334, 512)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"camrot": np.diag([1.0, 1.0, 1.1])}, "camrot is not a rotation"),
        ({"camrot": np.diag([1.0, 1.0, -1.0])}, "camrot is not a rotation"),
        ({"focal": [0.0, 1000.0]}, "focal lengths must be positive"),
        ({"width": 0}, "image size must be positive, got 0x512"),
        ({"campos": [0.0, np.nan, 0.0]}, "campos contains NaN"),
        ({"princpt": [1.0, 2.0, 3.0]}, r"princpt has shape \(3,\), expected \(2,\)"),
    ],
)
def test_bad_calibration_is_refused(change, message):
    fields = dict(
        name="cam",
        campos=[0.0, 0.0, -1000.0],
        camrot=Rotation.from_rotvec([0.1, 0.2, 0.3]).as_matrix(),
        focal=[1200.0, 1201.0],
        princpt=[167.0, 256.0],
        width=334,
        height=512,
    )
    fields.update(change)
    with pytest.raises(ValueError, match=message):
        Camera(**fields)


def test_look_at_and_dome_cameras_see_the_target():
    from handlib.geometry.cameras import dome_cameras, film_space, look_at_camera

    camera = look_at_camera("1", campos=[0, -1000, 200], target=[0, 0, 0], up=[0, 0, 1], princpt=(150.0, 260.0))
    (pixel, above), depth = camera.project(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 50.0]]))
    assert np.allclose(pixel, [150.0, 260.0]) and depth[0] > 0
    assert above[1] < pixel[1]  # world up is image up (smaller row)
    cameras = dome_cameras(8, target=[10.0, 20.0, 30.0], jitter_px=10.0)
    assert {(c.width, c.height) for c in cameras} == {(334, 512), (512, 334)}
    for cam in cameras:
        (centre,), (z,) = cam.project(np.array([[10.0, 20.0, 30.0]]))
        assert abs(z - 1000.0) < 1e-6
        assert np.abs(centre - [cam.width / 2, cam.height / 2]).max() <= 10.0 + 1e-9
        # Film space: y scaled by fy / fx, so one focal length projects both axes.
        point = np.array([[40.0, -30.0, 60.0]])
        film = film_space(cam, point)[0]
        (expected,), _ = cam.project(point)
        assert np.allclose(film[:2] / film[2] * cam.focal[0] + cam.princpt, expected)
