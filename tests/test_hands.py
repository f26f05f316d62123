"""Two hands in one render: each camera sees them hide each other where they overlap, as an
independent depth-ordered projection with OpenCV says."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from handlib.geometry.cameras import look_at_camera
from handlib.geometry.surface import HandSurface, side_by_side
from handlib.model.hand import HandParams
from handlib.rendering.renderer import Renderer, RenderSettings


@pytest.fixture(scope="module")
def two_hands(right_flat, left_flat):
    """A right hand and a flat left hand 25 mm in front of its palm, fingers the other way, so that
    seen from the palm side the left hand hides most of the right (palm on palm, not touching)."""
    right = right_flat(HandParams.create(1, transl=[0.0, 0.0, 1.0])).vertices[0].detach()
    left = left_flat(HandParams.create(1, transl=[0.15, -0.025, 1.0])).vertices[0].detach()
    centre = torch.cat([right, left]).mean(0).numpy()
    cameras = [
        look_at_camera(f"c{k}", centre + offset, centre, [0.0, 0.0, 1.0], focal=(330.0, 330.0), size=(96, 128))
        for k, offset in enumerate(([0.0, -900.0, 0.0], [250.0, -860.0, 80.0], [-200.0, -870.0, -150.0]))
    ]
    surfaces = [HandSurface.of(right_flat), HandSurface.of(left_flat)]
    return surfaces, [right, left], cameras


def depth_ordered_labels(camera, closed: np.ndarray, faces: np.ndarray, owner: np.ndarray, supersample: int = 4):
    """Independent reference: OpenCV projects every triangle and paints them far to near (the
    painter's algorithm), each with its hand's label (1, 2; 0 = background). Per pixel, the fraction
    of its sub-pixels showing each label."""
    rvec, _ = cv2.Rodrigues(camera.camrot)
    tvec = -camera.camrot @ camera.campos
    pixels, _ = cv2.projectPoints(closed.astype(np.float64), rvec, tvec, camera.intrinsics, None)
    depth = camera.world_to_camera(closed)[:, 2][faces].mean(1)
    shift = 4
    corners = np.round((pixels[:, 0] * supersample - 0.5) * (1 << shift)).astype(np.int32)[faces]
    labels = np.zeros((camera.height * supersample, camera.width * supersample), np.uint8)
    for k in np.argsort(-depth):
        cv2.fillConvexPoly(labels, corners[k], int(owner[k]), lineType=cv2.LINE_8, shift=shift)
    shape = (camera.height, supersample, camera.width, supersample)
    return [(labels == label).reshape(shape).mean((1, 3)) for label in (1, 2)]


def test_two_hands_hide_each_other_as_opencv_projects_them(two_hands):
    surfaces, (right, left), cameras = two_hands
    both = HandSurface.together(surfaces)
    assert both.num_model_vertices == len(right) + len(left) and len(both.loops) == 2
    red, green = torch.zeros(32, 32, 3), torch.zeros(32, 32, 3)
    red[..., 0], green[..., 1] = 1.0, 1.0
    rendered = Renderer(cameras, both, RenderSettings(mode="reflectance", spp=64)).render(
        torch.cat([right, left]), side_by_side([red, green])
    )
    closed = both.close(torch.cat([right, left])).numpy()
    faces = both.faces.numpy()
    owner = np.where(faces.min(1) < len(right), 1, 2)  # a wrist cap's rim is its hand's
    hidden = 0.0
    for camera, image in zip(cameras, rendered.images):
        image = image.numpy()
        expected = depth_ordered_labels(camera, closed, faces, owner)
        for channel, mask in zip((0, 1), expected):
            seen = image[..., channel]
            # The hidden hand shows as slivers, mostly outline: allow a 10% disagreement in area.
            overlap = np.minimum(seen, mask).sum() / np.maximum(seen, mask).sum()
            assert overlap > 0.9, (camera.name, channel, overlap)
            assert abs(seen.sum() - mask.sum()) < 0.05 * mask.sum(), (camera.name, channel)
        right_faces = surfaces[0].faces.numpy()
        alone = depth_ordered_labels(camera, surfaces[0].close(right).numpy(), right_faces, np.ones(len(right_faces)))
        hidden = max(hidden, 1.0 - image[..., 0].sum() / alone[0].sum())
        assert (
            abs(image[..., 0].sum() + image[..., 1].sum() - rendered.alphas[cameras.index(camera)].numpy().sum()) < 1.0
        )
    assert hidden > 0.5  # the left hand covers most of the right in some view


def test_each_hand_keeps_its_own_texture_and_gradient(two_hands):
    surfaces, (right, left), cameras = two_hands
    both = HandSurface.together(surfaces)
    textures = [torch.full((16, 16, 3), 0.3, requires_grad=True), torch.full((16, 16, 3), 0.7, requires_grad=True)]
    vertices = torch.cat([right, left]).clone().requires_grad_(True)
    out = Renderer(cameras[:1], both, RenderSettings(mode="reflectance", spp=4)).render(
        vertices, side_by_side(textures)
    )
    out.images[0].sum().backward()
    assert textures[0].grad.abs().sum() > 0 and textures[1].grad.abs().sum() > 0
    assert vertices.grad[: len(right)].abs().sum() > 0 and vertices.grad[len(right) :].abs().sum() > 0
    with pytest.raises(ValueError, match="one size"):
        side_by_side([torch.zeros(8, 8, 3), torch.zeros(16, 16, 3)])
