"""Cameras exactly as InterHand2.6M calibrates them, and their projection.

``camera.json`` gives, per capture and camera id: ``campos`` (mm, the camera centre
in world coordinates), ``camrot`` (3x3, world to camera), ``focal`` [fx, fy] and
``princpt`` [cx, cy] in pixels. World to camera is ``R @ (X - campos)``; a camera
point (x, y, z) lands at pixel (x / z * fx + cx, y / z * fy + cy), with x right,
y down and z forward (OpenCV's convention). Images are 334x512 or 512x334.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: Tolerance on R R^T = I and det R = 1 for a calibration rotation.
ROTATION_TOLERANCE = 1e-4


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
        if np.abs(rot @ rot.T - np.eye(3)).max() > ROTATION_TOLERANCE or abs(np.linalg.det(rot) - 1) > ROTATION_TOLERANCE:
            raise ValueError(
                f"Camera {self.name!r}: camrot is not a rotation (R R^T != I or det != 1); "
                "InterHand2.6M's camrot is an orthonormal world-to-camera matrix."
            )
        if (self.focal <= 0).any():
            raise ValueError(f"Camera {self.name!r}: focal lengths must be positive, got {self.focal.tolist()}.")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"Camera {self.name!r}: image size must be positive, got {self.width}x{self.height}.")

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
        return {"campos": self.campos.tolist(), "camrot": self.camrot.tolist(),
                "focal": self.focal.tolist(), "princpt": self.princpt.tolist()}

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
