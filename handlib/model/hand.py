"""The parametric hand: a thin wrapper over ``smplx.MANO``.

One code path serves handlib's open hand model (the default, a committed NPZ in
MANO's format) and a user's licensed ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``: both
are read into MANO's arrays by :mod:`handlib.model.mano_io` and handed to smplx as a
``data_struct``. Parameters follow InterHand2.6M's ``MANO_NeuralAnnot``:
global rotation (3), hand pose (45 axis-angle, or PCA coefficients), shape (10),
translation (3, metres). Outputs are in millimetres, as InterHand2.6M's joints.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import smplx
import torch
from smplx.utils import Struct

from handlib.model.assets import OPEN_HAND_RIGHT
from handlib.model.mano_io import fix_left_shapedirs, mirror_model, read_model_file
from handlib.model.skeleton import MANO_TIP_VERTEX_IDS, interhand_regressor

Side = Literal["right", "left"]
NUM_BETAS = 10
M_TO_MM = 1000.0


@dataclass(frozen=True)
class HandParams:
    """MANO parameters of B hands (torch tensors)."""

    global_orient: torch.Tensor  # (B, 3) axis-angle
    hand_pose: torch.Tensor  # (B, 45) axis-angle, or (B, n_comps) with use_pca
    betas: torch.Tensor  # (B, 10)
    transl: torch.Tensor  # (B, 3) metres

    @property
    def batch_size(self) -> int:
        return int(self.global_orient.shape[0])

    def detached(self) -> "HandParams":
        """A copy outside any autograd graph (what an observer of an optimisation may keep)."""
        return HandParams(*(t.detach().clone() for t in (self.global_orient, self.hand_pose, self.betas, self.transl)))

    @classmethod
    def zeros(cls, batch_size: int = 1, pose_dim: int = 45, dtype: torch.dtype = torch.float32) -> "HandParams":
        return cls.create(batch_size, pose_dim=pose_dim, dtype=dtype)

    @classmethod
    def create(
        cls,
        batch_size: int = 1,
        *,
        global_orient=None,
        hand_pose=None,
        betas=None,
        transl=None,
        pose_dim: int = 45,
        dtype: torch.dtype = torch.float32,
    ) -> "HandParams":
        """Zeros except the fields given (array-likes, reshaped to (batch_size, n))."""

        def field(value, width):
            if value is None:
                return torch.zeros(batch_size, width, dtype=dtype)
            return torch.as_tensor(value, dtype=dtype).reshape(batch_size, -1)

        return cls(field(global_orient, 3), field(hand_pose, pose_dim), field(betas, NUM_BETAS), field(transl, 3))

    @classmethod
    def from_interhand(cls, entry: dict, dtype: torch.dtype = torch.float32) -> "HandParams":
        """One hand of ``MANO_NeuralAnnot.json``: ``{'pose': 48, 'shape': 10, 'trans': 3}``."""
        missing = {"pose", "shape", "trans"} - set(entry)
        if missing:
            raise ValueError(f"MANO entry lacks {sorted(missing)}; expected keys pose (48), shape (10), trans (3).")
        pose = torch.as_tensor(np.asarray(entry["pose"], dtype=np.float64), dtype=dtype).reshape(1, -1)
        if pose.shape[1] != 48:
            raise ValueError(f"MANO 'pose' must have 48 values (3 global + 45 hand), got {pose.shape[1]}.")
        shape = torch.as_tensor(np.asarray(entry["shape"], dtype=np.float64), dtype=dtype).reshape(1, -1)
        trans = torch.as_tensor(np.asarray(entry["trans"], dtype=np.float64), dtype=dtype).reshape(1, -1)
        return cls(pose[:, :3], pose[:, 3:], shape, trans)

    def to_interhand(self) -> list[dict]:
        """Per hand, the ``MANO_NeuralAnnot`` dictionary (plain lists)."""
        pose = torch.cat([self.global_orient, self.hand_pose], dim=1).detach().cpu().double()
        return [
            {
                "pose": pose[b].tolist(),
                "shape": self.betas[b].detach().cpu().double().tolist(),
                "trans": self.transl[b].detach().cpu().double().tolist(),
            }
            for b in range(self.batch_size)
        ]


class HandOutput(NamedTuple):
    """Posed hands, millimetres, world frame."""

    vertices: torch.Tensor  # (B, V, 3)
    joints: torch.Tensor  # (B, 16, 3) MANO order (kinematic joints)
    joints21: torch.Tensor  # (B, 21, 3) InterHand2.6M order, regressed from vertices


class Truth(NamedTuple):
    """A true hand as errors are measured against it: the true surface's points at the model's
    vertices (V, 3) mm and its 21 joints (21, 3) mm, InterHand2.6M order. A truth need not be a
    hand of the model (see :mod:`handlib.data.mismatch`); ``floor`` is then the best eps_v any
    pose and shape of the model reaches (0 for a model hand, None when unknown)."""

    vertices: torch.Tensor
    joints21: torch.Tensor
    floor: float | None = None


def as_truth(model: "HandModel", truth: "Truth | HandParams") -> Truth:
    """``truth`` as a :class:`Truth`: as is, or the hand ``model`` makes of MANO parameters (floor 0)."""
    if isinstance(truth, Truth):
        return truth
    with torch.no_grad():
        output = model(truth)
    return Truth(output.vertices[0], output.joints21[0], 0.0)


def resolve_model_file(model_path: str | Path | None, side: Side) -> Path | None:
    """The model file for ``side``: None for the open model; a file as given; in a
    directory, ``MANO_RIGHT``/``MANO_LEFT`` with extension .pkl or .npz."""
    if model_path is None:
        return None
    path = Path(model_path)
    if path.is_dir():
        stem = "MANO_RIGHT" if side == "right" else "MANO_LEFT"
        for ext in (".pkl", ".npz"):
            if (path / f"{stem}{ext}").is_file():
                return path / f"{stem}{ext}"
        return path / f"{stem}.pkl"  # reported as missing by read_model_file
    return path


def load_model_data(model_path: str | Path | None = None, side: Side = "right") -> dict:
    """MANO arrays for ``side``: the open model (left = mirrored right), or the user's
    file; a user's left model gets the known shapedirs fix when its right twin is beside it."""
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}.")
    path = resolve_model_file(model_path, side)
    if path is None:
        data = read_model_file(OPEN_HAND_RIGHT)
        return mirror_model(data) if side == "left" else data
    data = read_model_file(path)
    if side == "left":
        twin = resolve_model_file(path.parent, "right")
        if twin is not None and twin.is_file() and twin != path:
            data["shapedirs"] = fix_left_shapedirs(data["shapedirs"], read_model_file(twin)["shapedirs"])
    return data


def _check_params(params: HandParams, pose_dim: int, num_betas: int) -> None:
    expected = {"global_orient": 3, "hand_pose": pose_dim, "betas": num_betas, "transl": 3}
    batch = params.global_orient.shape[0] if params.global_orient.ndim == 2 else None
    for name, width in expected.items():
        value = getattr(params, name)
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{name} must be a torch tensor, got {type(value).__name__}.")
        if value.ndim != 2 or value.shape[1] != width or value.shape[0] != batch:
            raise ValueError(
                f"{name} has shape {tuple(value.shape)}; expected ({batch if batch else 'B'}, {width}) "
                "with the same batch size B for all parameters."
            )
        if not torch.isfinite(value).all():
            raise ValueError(f"{name} contains NaN or infinite values.")


class HandModel(torch.nn.Module):
    """MANO-format hand layer: params -> vertices, 16 MANO joints, 21 InterHand joints (mm).

    Args:
        side: ``'right'`` or ``'left'``.
        model_path: None for the open hand model; else a MANO ``.pkl``/``.npz`` file or
            a folder holding ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``.
        use_pca / num_pca_comps: hand pose as PCA coefficients (as smplx).
        flat_hand_mean: as smplx; InterHand2.6M's annotations use False (pose 0 = mean pose).
    """

    def __init__(
        self,
        side: Side = "right",
        model_path: str | Path | None = None,
        use_pca: bool = False,
        num_pca_comps: int = 45,
        flat_hand_mean: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        data = load_model_data(model_path, side)
        self.side: Side = side
        self.source = "open hand model" if model_path is None else str(resolve_model_file(model_path, side))
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a notice about 10 betas
            self.layer = self._make_layer(model_path, data, side, use_pca, num_pca_comps, flat_hand_mean, dtype)
        self.pose_dim = num_pca_comps if (use_pca and num_pca_comps != 45) else 45
        tips = data.get("tip_vertex_ids", np.asarray(MANO_TIP_VERTEX_IDS))
        regressor21 = data.get("J_regressor_ih21")
        if regressor21 is None:
            regressor21 = interhand_regressor(data["J_regressor"], tips)
        self.register_buffer("regressor21", torch.as_tensor(np.asarray(regressor21), dtype=dtype))
        self.register_buffer("faces", torch.as_tensor(data["f"], dtype=torch.long))
        uv = data.get("uv_corners")
        self.uv_corners = None if uv is None else torch.as_tensor(np.asarray(uv), dtype=dtype)
        self.tip_vertex_ids = np.asarray(tips, dtype=np.int64)
        self.rest_joints = data["J_regressor"] @ data["v_template"]  # (16, 3) metres, mean shape

    @staticmethod
    def _make_layer(model_path, data, side, use_pca, num_pca_comps, flat_hand_mean, dtype) -> smplx.MANO:
        return smplx.MANO(
            model_path=str(model_path or OPEN_HAND_RIGHT.parent),
            data_struct=Struct(**data),
            is_rhand=side == "right",
            use_pca=use_pca,
            num_pca_comps=num_pca_comps,
            flat_hand_mean=flat_hand_mean,
            num_betas=NUM_BETAS,
            create_global_orient=False,
            create_hand_pose=False,
            create_betas=False,
            create_transl=False,
            dtype=dtype,
        )

    @property
    def num_vertices(self) -> int:
        return int(self.layer.v_template.shape[0])

    def forward(self, params: HandParams) -> HandOutput:
        _check_params(params, self.pose_dim, NUM_BETAS)
        out = self.layer(
            betas=params.betas,
            global_orient=params.global_orient,
            hand_pose=params.hand_pose,
            transl=params.transl,
        )
        vertices = out.vertices * M_TO_MM
        joints21 = torch.einsum("jv,bvc->bjc", self.regressor21.to(vertices.dtype), vertices)
        return HandOutput(vertices, out.joints * M_TO_MM, joints21)
