"""The interpenetration term between two closed hands: inside/outside, exact distances, zero for
hands apart, positive and finite-difference-checked for hands passing through each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handlib.geometry.penetration import (
    inside,
    interpenetration,
    intersection_volume,
    penetration_depths,
    surface_distance,
    winding_numbers,
)
from handlib.geometry.surface import HandSurface
from handlib.model.hand import HandParams


def cube(low=(0.0, 0.0, 0.0), size=1.0):
    """An axis-aligned cube: 8 corners, 12 outward (counter-clockwise) triangles."""
    corners = torch.tensor([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=torch.float64)
    faces = torch.tensor(
        [
            [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5],  # x = 0, x = 1
            [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6],  # y = 0, y = 1
            [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3],  # z = 0, z = 1
        ]
    )  # fmt: skip
    return torch.tensor(low, dtype=torch.float64) + size * corners, faces


def test_winding_numbers_and_distances_on_a_cube():
    vertices, faces = cube()
    points = torch.tensor([[0.5, 0.5, 0.5], [0.9, 0.2, 0.1], [1.5, 0.5, 0.5], [-0.2, -0.2, 2.0]], dtype=torch.float64)
    assert torch.allclose(
        winding_numbers(points, vertices, faces), torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-9
    )
    expected = [0.5, 0.1, 0.5, np.sqrt(0.04 + 0.04 + 1.0)]  # centre, near a face, off a face, off a corner
    assert torch.allclose(surface_distance(points, vertices, faces), torch.tensor(expected, dtype=torch.float64))
    assert torch.allclose(
        penetration_depths(points, vertices, faces), torch.tensor([0.5, 0.1, 0.0, 0.0], dtype=torch.float64)
    )


def test_the_overlap_volume_of_two_cubes():
    a, faces = cube()
    b, _ = cube(low=(0.5, 0.25, 0.0))
    volume = intersection_volume(a, faces, b, faces, samples=40000)
    assert volume == pytest.approx(0.5 * 0.75, rel=0.03)
    far, _ = cube(low=(3.0, 0.0, 0.0))
    assert intersection_volume(a, faces, far, faces) == 0.0


@pytest.fixture(scope="module")
def hand(right_flat):
    surface = HandSurface.of(right_flat)
    with torch.no_grad():
        vertices = right_flat(HandParams.create(1, transl=[0.0, 0.0, 1.0])).vertices[0].double()
    return surface, surface.close(vertices)


def test_a_hands_closed_surface_has_an_inside(hand):
    surface, closed = hand
    normals = surface.normals(closed)
    faces = surface.faces
    under = winding_numbers(closed - 0.3 * normals, closed, faces)
    over = winding_numbers(closed + 0.3 * normals, closed, faces)
    assert (under > 0.5).float().mean() > 0.97 and (over < 0.5).float().mean() > 0.97


def test_interpenetration_is_zero_apart_and_positive_and_exact_through(hand):
    surface, closed = hand
    faces = surface.faces
    apart = closed + torch.tensor([0.0, 0.0, 250.0], dtype=torch.float64)  # side by side, 250 mm apart
    assert float(interpenetration(closed, faces, apart, faces)) == 0.0
    # A copy 4 mm along the palm's normal (the open hand's -y): the palms pass through each other.
    through = (closed + torch.tensor([0.0, -4.0, 0.0], dtype=torch.float64)).requires_grad_(True)
    fixed = closed.clone().requires_grad_(True)
    # Which vertices lie inside the other hand; a step of 1e-4 mm below moves none across a
    # surface (checked at the end), so the sets are computed once.
    within = (inside(closed, through.detach(), faces), inside(through.detach(), closed, faces))
    loss = interpenetration(fixed, faces, through, faces, within)
    assert float(loss) > 0.1
    depths = penetration_depths(through.detach(), closed, faces, within[1])
    assert 2.0 < float(depths.max()) < 15.0  # about as deep as the shift, not more than a finger's width
    loss.backward()
    # Central finite differences on coordinates of the deepest vertices of each hand.
    for tensor, other, mask in ((through, fixed, within[1]), (fixed, through, within[0])):
        chosen = penetration_depths(tensor.detach(), other.detach(), faces, mask).argsort(descending=True)[:2]
        for index in chosen.tolist():
            for axis in range(3):
                step = torch.zeros_like(closed)
                step[index, axis] = 1e-4
                values = []
                for sign in (1.0, -1.0):
                    with torch.no_grad():
                        a, b = (fixed + sign * step, through) if tensor is fixed else (fixed, through + sign * step)
                        values.append(float(interpenetration(a, faces, b, faces, within)))
                numeric = (values[0] - values[1]) / 2e-4
                analytic = float(tensor.grad[index, axis])
                assert analytic == pytest.approx(numeric, rel=1e-3, abs=1e-7), (index, axis)
    with torch.no_grad():
        a, b = fixed + step, through
        assert torch.equal(inside(a, b, faces), within[0]) and torch.equal(inside(b, a, faces), within[1])


def test_ray_parity_agrees_with_the_winding_numbers(hand):
    """The fast inside test (ray crossings on Mitsuba's BVH) against the exact one, on points
    0.3 mm either side of the surface and spread through the hand's box."""
    from handlib.rendering.inside import inside_closed

    surface, closed = hand
    normals = surface.normals(closed)
    generator = torch.Generator().manual_seed(0)
    low, high = closed.min(0).values, closed.max(0).values
    spread = low + (high - low) * torch.rand(3000, 3, generator=generator, dtype=closed.dtype)
    points = torch.cat([closed - 0.3 * normals, closed + 0.3 * normals, spread])
    exact = winding_numbers(points, closed, surface.faces) > 0.5
    fast = inside_closed(surface, closed, points)
    assert 0.2 < float(exact.double().mean()) < 0.8  # both kinds of point are there
    assert float((fast == exact).double().mean()) > 0.995
