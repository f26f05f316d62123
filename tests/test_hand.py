"""The open hand model through smplx: geometry, joints, shape space, left/right."""

import numpy as np
import pytest
import smplx
import torch

from handlib.model import anatomy
from handlib.model.assets import OPEN_HAND_RIGHT
from handlib.model.hand import HandModel, HandParams
from handlib.model.skeleton import INTERHAND_JOINTS, interhand_from_mano_tips

ASSET = dict(np.load(OPEN_HAND_RIGHT))


def params(batch=1, **fields):
    return HandParams.create(batch, **fields)


def hand_length_mm(out):
    """Wrist to middle fingertip, InterHand2.6M joints 20 and 8."""
    return torch.linalg.norm(out.joints21[:, 8] - out.joints21[:, 20], dim=-1)


def test_asset_loads_through_smplx(right_flat):
    assert isinstance(right_flat.layer, smplx.MANO)
    assert right_flat.num_vertices == ASSET["v_template"].shape[0] == 1609
    assert tuple(right_flat.faces.shape) == (3196, 3)
    assert ASSET["posedirs"].shape == (1609, 3, 135)


def test_zero_pose_reproduces_template(right_flat):
    out = right_flat(params())
    np.testing.assert_allclose(out.vertices[0].numpy(), ASSET["v_template"] * 1000, atol=1e-3)


def test_joints_equal_regressor_outputs(right_flat, generator):
    out = right_flat(params())
    np.testing.assert_allclose(out.joints[0].numpy(), ASSET["J_regressor"] @ ASSET["v_template"] * 1000, atol=1e-3)
    posed = right_flat(
        params(hand_pose=0.3 * torch.randn(1, 45, generator=generator), betas=torch.randn(1, 10, generator=generator))
    )
    regressed = ASSET["J_regressor_ih21"] @ posed.vertices[0].detach().numpy()
    np.testing.assert_allclose(posed.joints21[0].detach().numpy(), regressed, atol=1e-3)
    # The 21-joint regressor is MANO's 16 rows plus one-hot fingertips, reordered.
    rows = np.concatenate([ASSET["J_regressor"], np.eye(1609)[ASSET["tip_vertex_ids"]]])
    np.testing.assert_allclose(ASSET["J_regressor_ih21"], rows[interhand_from_mano_tips()], atol=1e-6)


def test_regressor_is_a_convex_combination_inside_the_hand(right_flat):
    reg = ASSET["J_regressor"]
    assert (reg >= 0).all()
    np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-5)
    # Joints sit inside the mesh: a few mm from the nearest surface vertex, never on it.
    joints = reg @ ASSET["v_template"]
    nearest = np.linalg.norm(ASSET["v_template"][None] - joints[:, None], axis=-1).min(1) * 1000
    assert (nearest > 1.0).all() and (nearest < 20.0).all(), nearest


def test_mean_shape_hand_length_is_adult(right_flat):
    length = float(hand_length_mm(right_flat(params())))
    assert 180.0 <= length <= 190.0, length


def test_shape_components_change_size_smoothly(right_flat):
    betas = torch.zeros(13, 10)
    betas[:, 0] = torch.linspace(-3, 3, 13)
    lengths = hand_length_mm(right_flat(params(13, betas=betas))).detach().numpy()
    steps = np.diff(lengths)
    assert (steps > 0).all(), lengths  # beta 0 grows the hand monotonically
    per_unit = (lengths[-1] - lengths[0]) / 6.0
    assert 5.0 < per_unit < 20.0, lengths  # ~1 cm per standard deviation, like adult hands
    assert np.abs(np.diff(steps)).max() < 0.1 * steps.mean()  # smooth: nearly linear
    # Every component moves the surface by millimetres, not metres or microns.
    template = right_flat(params()).vertices
    for k in range(10):
        beta = torch.zeros(1, 10)
        beta[0, k] = 1.0
        shift = (right_flat(params(betas=beta)).vertices - template).norm(dim=-1).mean()
        assert 0.01 < float(shift) < 15.0, (k, float(shift))


def test_finger_lengths_follow_shape(right_flat):
    """A shape change alters finger lengths relative to the palm (not only scale)."""

    def ratio(out):
        j = out.joints21[0]
        finger = torch.linalg.norm(j[8] - j[11])  # middle tip to middle base
        palm = torch.linalg.norm(j[11] - j[20])  # middle base to wrist
        return float(finger / palm)

    ratios = []
    for k in range(10):
        beta = torch.zeros(1, 10)
        beta[0, k] = 2.0
        ratios.append(ratio(right_flat(params(betas=beta))))
    assert np.ptp(ratios) > 0.01, ratios


def test_left_is_the_mirror_of_right(right_flat, left_flat, generator):
    pose = 0.4 * torch.randn(1, 45, generator=generator)
    orient = 0.5 * torch.randn(1, 3, generator=generator)
    betas = torch.randn(1, 10, generator=generator)
    transl = torch.tensor([[0.1, -0.2, 0.9]])
    flip = torch.tensor([1.0, -1.0, -1.0])  # axis-angle under x -> -x
    right = right_flat(params(hand_pose=pose, global_orient=orient, betas=betas, transl=transl))
    left = left_flat(
        params(
            hand_pose=(pose.reshape(15, 3) * flip).reshape(1, 45),
            global_orient=orient * flip,
            betas=betas,
            transl=transl * torch.tensor([-1.0, 1, 1]),
        )
    )
    mirrored = right.vertices * torch.tensor([-1.0, 1.0, 1.0])
    torch.testing.assert_close(left.vertices, mirrored, atol=1e-3, rtol=0)


def _signed_volume(vertices, faces):
    v = vertices[faces]
    return float(np.einsum("fi,fi->f", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6)


def test_both_hands_have_outward_normals(right_flat, left_flat):
    for model in (right_flat, left_flat):
        vertices = model(params()).vertices[0].numpy()
        assert _signed_volume(vertices, model.faces.numpy()) > 0  # open at the wrist, still positive


def test_interhand_joint_order(right_flat):
    assert INTERHAND_JOINTS[:4] == ("thumb4", "thumb3", "thumb2", "thumb1")
    assert INTERHAND_JOINTS[20] == "wrist" and INTERHAND_JOINTS[8] == "middle4"
    j = right_flat(params()).joints21[0].numpy()
    for f in range(5):  # per finger tip -> base: distance to the wrist falls
        dist = np.linalg.norm(j[4 * f : 4 * f + 4] - j[20], axis=1)
        assert (np.diff(dist) < 0).all(), (f, dist)
    # Across the hand the bases run thumb, index, middle, ring, pinky (radial to ulnar).
    frame = anatomy.palm_frame(right_flat.rest_joints, "right")
    bases = j[[2, 7, 11, 15, 19]] @ frame.radial  # thumb MCP, finger MCPs
    assert (np.diff(bases) < 0).all(), bases


def test_fingers_bend_toward_the_palm(right_flat):
    axes = anatomy.joint_axes(right_flat.rest_joints, "right")
    frame = anatomy.palm_frame(right_flat.rest_joints, "right")

    def joints(curls):
        return right_flat(params(hand_pose=anatomy.curl_pose(axes, curls))).joints21[0].numpy()

    flat = joints({})
    for name, tip in (("thumb", 0), ("index", 4), ("middle", 8), ("ring", 12), ("pinky", 16)):
        # A little flexion moves the tip out of the palm side; hyperextension the other way.
        assert (joints({name: 0.15})[tip] - flat[tip]) @ frame.palmar > 3.0, name
        assert (joints({name: -0.15})[tip] - flat[tip]) @ frame.palmar < -3.0, name
        if name == "thumb":
            continue
        # Curling brings the tip back toward the wrist; a full curl ends inside the palm
        # (the template's fingers are relaxed, slightly bent, so the tip wraps past its
        # closest point just before full curl).
        reach = [np.linalg.norm(joints({name: c})[tip] - flat[20]) for c in (0.0, 0.3, 0.6, 1.0)]
        assert (np.diff(reach[:3]) < -5.0).all(), (name, reach)
        assert reach[3] < 0.6 * reach[0], (name, reach)
        others = [t for t in (0, 4, 8, 12, 16) if t != tip]
        np.testing.assert_allclose(joints({name: 1.0})[others], flat[others], atol=1e-3)


def test_pca_pose_space_matches_axis_angle(generator):
    components = ASSET["hands_components"]
    np.testing.assert_allclose(components @ components.T, np.eye(45), atol=1e-4)
    pca = HandModel(use_pca=True, num_pca_comps=12)
    full = HandModel()
    coeffs = torch.randn(1, 12, generator=generator)
    pose = coeffs @ torch.as_tensor(components[:12])
    torch.testing.assert_close(
        pca(HandParams.create(hand_pose=coeffs, pose_dim=12)).vertices,
        full(params(hand_pose=pose)).vertices,
        atol=1e-3,
        rtol=0,
    )


def test_uvs_fill_the_square_atlas(right_flat):
    uv = right_flat.uv_corners.numpy()
    assert uv.shape == (3196, 3, 2)
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    assert (uv.reshape(-1, 2).max(0) - uv.reshape(-1, 2).min(0)).max() > 0.95


def test_outputs_are_differentiable(right_flat):
    p = params()
    for field in ("hand_pose", "betas", "global_orient"):
        getattr(p, field).requires_grad_(True)
    right_flat(p).vertices.sum().backward()
    assert p.betas.grad.abs().sum() > 0 and p.global_orient.grad.abs().sum() > 0


def test_interhand_entry_round_trip():
    entry = {"pose": list(np.linspace(-0.5, 0.5, 48)), "shape": [0.1] * 10, "trans": [0.01, 0.02, 0.3]}
    back = HandParams.from_interhand(entry).to_interhand()[0]
    np.testing.assert_allclose(back["pose"], entry["pose"], atol=1e-6)
    np.testing.assert_allclose(back["trans"], entry["trans"], atol=1e-7)
    with pytest.raises(ValueError, match="48 values"):
        HandParams.from_interhand({"pose": [0.0] * 45, "shape": [0.0] * 10, "trans": [0.0] * 3})
    with pytest.raises(ValueError, match="lacks"):
        HandParams.from_interhand({"pose": [0.0] * 48})


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("hand_pose", torch.zeros(1, 44), r"hand_pose has shape \(1, 44\); expected \(1, 45\)"),
        ("betas", torch.zeros(2, 10), r"betas has shape \(2, 10\)"),
        ("transl", torch.zeros(3), r"transl has shape \(3,\)"),
        ("global_orient", torch.tensor([[0.0, float("nan"), 0.0]]), "global_orient contains NaN"),
        ("betas", torch.full((1, 10), float("inf")), "betas contains NaN or infinite"),
    ],
)
def test_bad_parameters_raise_clear_errors(right_flat, field, value, message):
    p = params()
    fields = {name: getattr(p, name) for name in ("global_orient", "hand_pose", "betas", "transl")}
    fields[field] = value
    with pytest.raises(ValueError, match=message):
        right_flat(HandParams(**fields))
