"""Anatomical axes of a MANO-format hand and poses built from joint angles.

Pure functions on the rest joints (16, 3) of any MANO-format model (the open
hand model or a user's MANO), so gestures mean the same on both. A MANO pose is
one axis-angle rotation per joint, relative to the rest pose and expressed in
rest-pose axes; here each finger joint's rotation is built from a flexion angle
(toward the palm, positive) and an abduction angle (toward the thumb side for
fingers; away from the palm for the thumb), both in radians.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation

from handlib.model.skeleton import FINGER_JOINTS, MANO_PARENTS

#: How far the thumb's flexion direction leans toward the palm (vs. toward the
#: little finger): the thumb pad faces the fingers, not the palm.
THUMB_PALMAR_LEAN = 0.6


class PalmFrame(NamedTuple):
    """Unit vectors of the hand in rest pose (each (3,))."""

    distal: np.ndarray  # wrist -> middle finger base
    radial: np.ndarray  # little finger -> index finger side (toward the thumb)
    palmar: np.ndarray  # out of the palm


class JointAxes(NamedTuple):
    """Rotation axes of MANO joints 1..15 in rest-pose axes, each (15, 3)."""

    flexion: np.ndarray
    abduction: np.ndarray


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def palm_frame(joints: np.ndarray, side: str = "right") -> PalmFrame:
    """Palm frame from rest joints (16, 3) in MANO order; ``side`` 'right' or 'left'."""
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    distal = _unit(joints[4] - joints[0])
    radial = joints[1] - joints[7]
    radial = _unit(radial - radial @ distal * distal)
    palmar = np.cross(radial, distal)
    return PalmFrame(distal, radial, palmar if side == "right" else -palmar)


def _rotating_axis(direction: np.ndarray, toward: np.ndarray) -> np.ndarray:
    """Axis about which a positive rotation turns ``direction`` toward ``toward``."""
    toward = toward - toward @ direction * direction
    return _unit(np.cross(direction, toward))


def bone_directions(joints: np.ndarray) -> np.ndarray:
    """(15, 3) unit direction of the bone each joint 1..15 rotates (to its child,
    or continuing its parent's bone for the last joint of a finger)."""
    directions = np.zeros((15, 3))
    for chain in FINGER_JOINTS.values():
        for k, j in enumerate(chain):
            if k + 1 < len(chain):
                d = joints[chain[k + 1]] - joints[j]
            else:
                d = joints[j] - joints[MANO_PARENTS[j]]
            directions[j - 1] = _unit(d)
    return directions


def joint_axes(joints: np.ndarray, side: str = "right") -> JointAxes:
    """Flexion and abduction axes of joints 1..15 from rest joints (16, 3)."""
    frame = palm_frame(joints, side)
    directions = bone_directions(joints)
    thumb_flex_toward = _unit(THUMB_PALMAR_LEAN * frame.palmar - frame.radial)
    flexion = np.zeros((15, 3))
    abduction = np.zeros((15, 3))
    for finger, chain in FINGER_JOINTS.items():
        for j in chain:
            d = directions[j - 1]
            if finger == "thumb":
                flexion[j - 1] = _rotating_axis(d, thumb_flex_toward)
                abduction[j - 1] = _rotating_axis(d, frame.palmar)
            else:
                flexion[j - 1] = _rotating_axis(d, frame.palmar)
                abduction[j - 1] = _rotating_axis(d, frame.radial)
    return JointAxes(flexion, abduction)


def pose_from_angles(flexion: np.ndarray, abduction: np.ndarray, axes: JointAxes) -> np.ndarray:
    """MANO hand pose (..., 45) axis-angle from angles (..., 15) in radians.

    Each joint rotates first by its flexion, then by its abduction, both about
    rest-pose axes: R = R_abd @ R_flex.
    """
    flexion = np.asarray(flexion, dtype=np.float64)
    abduction = np.asarray(abduction, dtype=np.float64)
    if flexion.shape[-1] != 15 or abduction.shape != flexion.shape:
        raise ValueError(
            f"flexion and abduction must both have shape (..., 15), got {flexion.shape} and {abduction.shape}"
        )
    batch = flexion.shape[:-1]
    flex_rot = Rotation.from_rotvec((flexion[..., None] * axes.flexion).reshape(-1, 3))
    abd_rot = Rotation.from_rotvec((abduction[..., None] * axes.abduction).reshape(-1, 3))
    return (abd_rot * flex_rot).as_rotvec().reshape(*batch, 45)


#: Flexion of a fully curled finger (degrees) at MCP, PIP and DIP; thumb CMC, MCP, IP.
FULL_CURL_DEG = {"finger": (85.0, 100.0, 65.0), "thumb": (45.0, 35.0, 50.0)}
#: Thumb CMC abduction at full opposition (degrees).
THUMB_OPPOSITION_ABDUCTION_DEG = 20.0


def curl_pose(axes: JointAxes, curls: dict[str, float]) -> np.ndarray:
    """MANO hand pose (45,) with each named finger curled by a fraction (0 open, 1 fully
    curled; negative values hyperextend). Fingers not named stay straight."""
    unknown = set(curls) - set(FINGER_JOINTS)
    if unknown:
        raise ValueError(f"Unknown finger(s) {sorted(unknown)}; use {sorted(FINGER_JOINTS)}.")
    flexion = np.zeros(15)
    abduction = np.zeros(15)
    for finger, amount in curls.items():
        full = FULL_CURL_DEG["thumb" if finger == "thumb" else "finger"]
        for joint, angle in zip(FINGER_JOINTS[finger], full):
            flexion[joint - 1] = np.radians(angle) * amount
    if "thumb" in curls:
        abduction[FINGER_JOINTS["thumb"][0] - 1] = np.radians(THUMB_OPPOSITION_ABDUCTION_DEG) * curls["thumb"]
    return pose_from_angles(flexion, abduction, axes)
