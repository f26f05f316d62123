"""A library of named hand gestures in MANO pose space.

Each gesture is a curl per finger (0 straight as in the model's template, 1 fully
curled, negative straightens a template that is pre-bent) and a spread per finger
(MCP abduction in degrees, positive toward the thumb; for the thumb, away from the
palm). Poses are built from the model's own joint axes (:mod:`handlib.model.anatomy`),
so a gesture means the same on the open hand and on MANO.

The set spans self-occlusion from none (open, relaxed) to heavy (fist, pinch/OK).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from handlib.model.anatomy import FULL_CURL_DEG, THUMB_OPPOSITION_ABDUCTION_DEG, joint_axes, pose_from_angles
from handlib.model.skeleton import FINGER_JOINTS

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
#: Fanned-out fingers (MCP abduction, degrees) of an open hand.
FAN = {"thumb": 15.0, "index": 10.0, "middle": 0.0, "ring": -8.0, "pinky": -16.0}


@dataclass(frozen=True)
class Gesture:
    """Curl per finger (fraction of a full curl) and spread per finger (degrees)."""

    curl: dict[str, float]
    spread: dict[str, float] = field(default_factory=dict)
    occlusion: str = "none"  # how much the hand hides itself: none, light, medium, heavy


def _curled(thumb: float, index: float, middle: float, ring: float, pinky: float) -> dict[str, float]:
    return dict(zip(FINGERS, (thumb, index, middle, ring, pinky)))


GESTURES: dict[str, Gesture] = {
    "open": Gesture(_curled(-0.3, -0.3, -0.3, -0.3, -0.3), FAN, "none"),
    # Fingers straight and spread wide, as held to interlock them with another hand's.
    "spread": Gesture(
        _curled(0.0, 0.0, 0.0, 0.0, 0.0), {"thumb": 20.0, "index": 16.0, "middle": 2.0, "ring": -12.0, "pinky": -24.0}
    ),
    "relaxed": Gesture(_curled(0.1, 0.1, 0.15, 0.2, 0.25), {}, "light"),
    "point": Gesture(_curled(0.8, -0.25, 1.0, 1.0, 1.0), {}, "medium"),
    "thumbs_up": Gesture(_curled(-0.4, 1.0, 1.0, 1.0, 1.0), {"thumb": 25.0}, "medium"),
    "peace": Gesture(_curled(0.9, -0.25, -0.25, 1.0, 1.0), {"index": 12.0, "middle": -8.0}, "medium"),
    "three": Gesture(_curled(0.9, -0.25, -0.25, -0.25, 1.0), {"index": 8.0, "ring": -6.0}, "medium"),
    "horns": Gesture(_curled(0.9, -0.25, 1.0, 1.0, -0.25), {"index": 8.0, "pinky": -14.0}, "medium"),
    "ok": Gesture(_curled(0.75, 0.7, -0.2, -0.2, -0.2), {"middle": -2.0, "ring": -8.0, "pinky": -14.0}, "heavy"),
    "fist": Gesture(_curled(0.9, 1.0, 1.0, 1.0, 1.0), {}, "heavy"),
}


def gesture(name: str) -> Gesture:
    if name not in GESTURES:
        raise ValueError(f"Unknown gesture {name!r}; known gestures: {', '.join(GESTURES)}.")
    return GESTURES[name]


def gesture_pose(name: str, rest_joints: np.ndarray, side: str = "right") -> np.ndarray:
    """The gesture's MANO hand pose (45,) relative to the template (``flat_hand_mean=True``)."""
    spec = gesture(name)
    axes = joint_axes(np.asarray(rest_joints, dtype=np.float64), side)
    flexion, abduction = np.zeros(15), np.zeros(15)
    for finger in FINGERS:
        amount = spec.curl.get(finger, 0.0)
        full = FULL_CURL_DEG["thumb" if finger == "thumb" else "finger"]
        for joint, angle in zip(FINGER_JOINTS[finger], full):
            flexion[joint - 1] = np.radians(angle) * amount
        base = FINGER_JOINTS[finger][0] - 1
        abduction[base] = np.radians(spec.spread.get(finger, 0.0))
        if finger == "thumb" and amount > 0:
            abduction[base] += np.radians(THUMB_OPPOSITION_ABDUCTION_DEG) * amount
    return pose_from_angles(flexion, abduction, axes)


def model_hand_pose(model, pose_from_template: np.ndarray) -> torch.Tensor:
    """The ``hand_pose`` (1, 45) to give ``model`` for a pose written relative to its template:
    a model with ``flat_hand_mean=False`` (InterHand2.6M's convention) adds its mean pose."""
    pose = torch.as_tensor(np.asarray(pose_from_template), dtype=torch.float32).reshape(1, 45)
    mean = getattr(model.layer, "pose_mean", None)
    if mean is not None and mean.numel() >= 48:
        pose = pose - mean[3:48].reshape(1, 45).to(pose)
    return pose
