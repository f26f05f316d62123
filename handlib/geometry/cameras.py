"""Cameras exactly as InterHand2.6M calibrates them, and their projection.

``camera.json`` gives, per capture and camera id: ``campos`` (mm, the camera centre
in world coordinates), ``camrot`` (3x3, world to camera), ``focal`` [fx, fy] and
``princpt`` [cx, cy] in pixels. World to camera is ``R @ (X - campos)``; a camera
point (x, y, z) lands at pixel (x / z * fx + cx, y / z * fy + cy), with x right,
y down and z forward (OpenCV's convention). Images are 334x512 or 512x334.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

#: Tolerance on R R^T = I and det R = 1 for a calibration rotation.
ROTATION_TOLERANCE = 1e-4


#: Largest image side accepted from a calibration file (InterHand2.6M's are 334x512).
MAX_IMAGE_SIDE = 16384


@dataclass(frozen=True)
class Camera:
    """One calibrated camera (InterHand2.6M's fields, plus the image size)."""

    name: str
    campos: np.ndarray  # (3,) mm, camera centre in world coordinates
    camrot: np.ndarray  # (3, 3) world -> camera rotation
    focal: np.ndarray  # (2,) fx, fy in pixels
    princpt: np.ndarray  # (2,) cx, cy in pixels
    width: int
    height: int

    def __post_init__(self) -> None:
        for field, shape in (("campos", (3,)), ("camrot", (3, 3)), ("focal", (2,)), ("princpt", (2,))):
            value = np.asarray(getattr(self, field), dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"Camera {self.name!r}: {field} has shape {value.shape}, expected {shape}.")
            if not np.isfinite(value).all():
                raise ValueError(f"Camera {self.name!r}: {field} contains NaN or infinite values.")
            object.__setattr__(self, field, value)
        rot = self.camrot
        if (
            np.abs(rot @ rot.T - np.eye(3)).max() > ROTATION_TOLERANCE
            or abs(np.linalg.det(rot) - 1) > ROTATION_TOLERANCE
        ):
            raise ValueError(
                f"Camera {self.name!r}: camrot is not a rotation (R R^T != I or det != 1); "
                "InterHand2.6M's camrot is an orthonormal world-to-camera matrix."
            )
        if (self.focal <= 0).any():
            raise ValueError(f"Camera {self.name!r}: focal lengths must be positive, got {self.focal.tolist()}.")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"Camera {self.name!r}: image size must be positive, got {self.width}x{self.height}.")
        if max(int(self.width), int(self.height)) > MAX_IMAGE_SIDE:
            raise ValueError(
                f"Camera {self.name!r}: image size {self.width}x{self.height} exceeds the "
                f"{MAX_IMAGE_SIDE} pixels a side accepted."
            )

    @classmethod
    def from_interhand(cls, calibration: dict, cam_id: str, width: int, height: int) -> "Camera":
        """From one capture of ``camera.json`` (``{campos: {id: ...}, camrot: ..., focal: ..., princpt: ...}``)."""
        try:
            fields = {key: calibration[key][str(cam_id)] for key in ("campos", "camrot", "focal", "princpt")}
        except KeyError as err:
            raise ValueError(f"Camera {cam_id!r} has no calibration entry {err} in camera.json.") from None
        return cls(str(cam_id), width=int(width), height=int(height), **fields)

    def to_interhand(self) -> dict[str, list]:
        """The camera.json fields of this camera (plain lists)."""
        return {
            "campos": self.campos.tolist(),
            "camrot": self.camrot.tolist(),
            "focal": self.focal.tolist(),
            "princpt": self.princpt.tolist(),
        }

    @property
    def intrinsics(self) -> np.ndarray:
        """(3, 3) K matrix."""
        (fx, fy), (cx, cy) = self.focal, self.princpt
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    def world_to_camera(self, points: np.ndarray | torch.Tensor):
        """Camera coordinates (..., 3) mm of world points (..., 3) mm; numpy or torch."""
        return _world_to_camera(points, self.camrot, self.campos)

    def project(self, points: np.ndarray | torch.Tensor):
        """Pixels (..., 2) and depths (...) of world points (..., 3) mm; differentiable in torch."""
        cam = self.world_to_camera(points)
        return project_camera_points(cam, self.focal, self.princpt), cam[..., 2]


def _like(constant: np.ndarray, reference):
    """``constant`` as a tensor matching ``reference`` (dtype, device) when that is a tensor."""
    if isinstance(reference, torch.Tensor):
        return torch.as_tensor(constant, dtype=reference.dtype, device=reference.device)
    return constant


def _world_to_camera(points, rot: np.ndarray, centre: np.ndarray):
    if not isinstance(points, torch.Tensor):
        points = np.asarray(points, dtype=np.float64)
    return (points - _like(centre, points)) @ _like(rot, points).T


def project_camera_points(cam, focal: np.ndarray, princpt: np.ndarray):
    """Pixels (..., 2) of camera-space points (..., 3): x / z * f + c (pure, numpy or torch)."""
    return cam[..., :2] / cam[..., 2:3] * _like(focal, cam) + _like(princpt, cam)


def film_space(camera: Camera, points):
    """Camera-space points with y scaled by fy / fx: there one focal length fx serves both axes.

    A pinhole with fx != fy images (x, y, z) where a square-pixel pinhole of focal fx
    images (x, y * fy / fx, z): the map is linear and keeps every ray through the
    centre and the depth order along it, so visibility and texture lookups are exact.
    The renderer works in this space because Mitsuba's perspective sensor has square pixels.
    """
    cam = camera.world_to_camera(points)
    scale = _like(np.array([1.0, camera.focal[1] / camera.focal[0], 1.0]), cam)
    return cam * scale


def look_at_camera(name: str, campos, target, up, focal=(1240.0, 1240.0), size=(334, 512), princpt=None) -> Camera:
    """A camera at ``campos`` (mm) looking at ``target``, image ``size`` = (width, height).

    ``up`` is the world direction that should appear upward in the image.
    """
    campos, target, up = (np.asarray(v, dtype=np.float64) for v in (campos, target, up))
    forward = target - campos
    if np.linalg.norm(forward) == 0:
        raise ValueError("look_at_camera: campos and target coincide.")
    z = forward / np.linalg.norm(forward)
    x = np.cross(z, up)  # image x (right); y (down) is z x x
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at_camera: up is parallel to the viewing direction.")
    x /= np.linalg.norm(x)
    rot = np.stack([x, np.cross(z, x), z])
    width, height = size
    if princpt is None:
        princpt = (width / 2.0, height / 2.0)
    return Camera(name, campos, rot, np.asarray(focal, float), np.asarray(princpt, float), int(width), int(height))


#: How far fy strays from fx in InterHand2.6M's calibrations: |fy / fx - 1| up to about 1.5e-4
#: (0.19 px of 1271 in the four cameras of the camera file in mmpose's InterHand2.6M test data).
ANISOTROPY = 1.5e-4


def dome_cameras(
    count: int,
    target,
    radius: float = 1000.0,
    up=(0.0, 0.0, 1.0),
    seed: int = 0,
    focal=(1240.0, 1240.0),
    size=(334, 512),
    jitter_px: float = 0.0,
    anisotropy: float = ANISOTROPY,
) -> list[Camera]:
    """``count`` cameras spread evenly over the upper half-sphere around ``target`` (mm).

    Like InterHand2.6M's capture dome: portrait and landscape images alternate,
    ``jitter_px`` moves each principal point by up to that many pixels, and fy differs from
    fx by up to ``anisotropy`` of it (with ``jitter_px`` > 0).
    """
    rng = np.random.default_rng(seed)
    target = np.asarray(target, dtype=np.float64)
    up = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    # An arbitrary pair of axes orthogonal to up.
    side = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
    side /= np.linalg.norm(side)
    other = np.cross(up, side)
    golden = math.pi * (3.0 - math.sqrt(5.0))
    cameras = []
    for index in range(count):
        height = 0.1 + 0.85 * (index + 0.5) / count  # sin(elevation), from near the horizon upward
        azimuth = golden * index
        ring = math.sqrt(1.0 - height * height)
        direction = ring * (math.cos(azimuth) * side + math.sin(azimuth) * other) + height * up
        # The image "up" is the world up projected, or any side vector near the zenith.
        image_up = up if height < 0.99 else side
        width, image_height = size if index % 2 == 0 else size[::-1]
        stray = rng.uniform(-1.0, 1.0) * (anisotropy if jitter_px > 0 else 0.0)
        f = np.asarray(focal, dtype=np.float64) * np.array([1.0, 1.0 + stray])
        pp = np.array([width / 2.0, image_height / 2.0]) + rng.uniform(-jitter_px, jitter_px, 2)
        cameras.append(
            look_at_camera(
                f"{400000 + index}",
                target + radius * direction,
                target,
                image_up,
                focal=f,
                size=(width, image_height),
                princpt=pp,
            )
        )
    return cameras
