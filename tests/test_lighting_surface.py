"""SH lighting maths and the closed hand surface."""

import math

import numpy as np
import pytest
import torch

from handlib.geometry.surface import HandSurface, boundary_loops, vertex_normals
from handlib.model.hand import HandParams
from handlib.rendering import lighting


def sphere_directions(count, seed=0):
    d = torch.randn(count, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return d / d.norm(dim=1, keepdim=True)


def test_sh_basis_is_orthonormal():
    d = sphere_directions(400_000)
    basis = lighting.sh_basis(d, 4)  # 16 functions
    gram = basis.T @ basis * (4 * math.pi / d.shape[0])
    assert torch.allclose(gram, torch.eye(16, dtype=gram.dtype), atol=0.02)


def test_irradiance_is_cosine_convolution():
    # Monte Carlo irradiance of an SH environment against the closed form, for a few normals.
    coefficients = torch.tensor(
        [
            [1.0, 0.8, 0.6],
            [0.3, -0.2, 0.1],
            [0.2, 0.1, -0.3],
            [-0.1, 0.2, 0.25],
            [0.05, 0.0, 0.1],
            [0.0, 0.1, 0.0],
            [0.1, 0.0, 0.0],
            [0.0, 0.0, 0.05],
            [0.05, 0.05, 0.05],
        ],
        dtype=torch.float64,
    )
    d = sphere_directions(400_000, seed=1)
    radiance = lighting.radiance(coefficients, d)
    for normal in ([0.0, 0.0, 1.0], [0.6, 0.0, 0.8], [-0.48, 0.6, -0.64]):
        n = torch.tensor(normal, dtype=torch.float64)
        cosine = torch.clamp(d @ n, min=0.0)
        monte_carlo = (radiance * cosine[:, None]).mean(0) * 4 * math.pi
        closed = lighting.irradiance(coefficients, n[None])[0]
        assert torch.allclose(monte_carlo, closed, atol=0.03), (normal, monte_carlo, closed)


def test_uniform_light_gives_pi_irradiance():
    light = lighting.uniform((0.5, 1.0, 2.0))
    e = lighting.irradiance(light, torch.tensor([[0.0, 1.0, 0.0]]))
    assert torch.allclose(e[0], torch.tensor([0.5, 1.0, 2.0]) * math.pi, rtol=1e-5)


@pytest.mark.parametrize("shape", [(5, 3), (4, 2), (4,)])
def test_bad_sh_shapes_are_refused(shape):
    with pytest.raises(ValueError, match="SH coefficients"):
        lighting.bands_of(torch.zeros(shape))


def test_open_hand_surface_is_closed_and_outward(right_flat):
    surface = HandSurface.of(right_flat)
    assert len(surface.loops) == 1  # the wrist
    assert boundary_loops(surface.faces.numpy()) == []
    vertices = surface.close(right_flat(HandParams.zeros()).vertices[0].detach())
    assert vertices.shape == (surface.num_vertices, 3)
    # Outward: the signed volume of a closed, outward-wound mesh is positive.
    tri = vertices[surface.faces]
    volume = (tri[:, 0] * torch.cross(tri[:, 1], tri[:, 2], dim=1)).sum() / 6
    assert volume > 0
    normals = vertex_normals(vertices, surface.faces)
    assert torch.allclose(normals.norm(dim=1), torch.ones(len(normals)), atol=1e-5)


def test_surface_refuses_bad_uvs(right_flat):
    uv = right_flat.uv_corners.clone()
    uv[0, 0, 0] = 1.5
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        HandSurface.create(right_flat.faces, uv, right_flat.num_vertices)
    with pytest.raises(ValueError, match="shape"):
        HandSurface.create(right_flat.faces, right_flat.uv_corners[:-1], right_flat.num_vertices)
    with pytest.raises(ValueError, match="NaN"):
        HandSurface.create(
            right_flat.faces, torch.full_like(right_flat.uv_corners, float("nan")), right_flat.num_vertices
        )


def test_dominant_direction_finds_where_a_light_comes_from():
    for direction in ([0.0, 0.0, 1.0], [0.6, -0.8, 0.0], [-0.48, 0.6, 0.64]):
        d = torch.tensor(direction, dtype=torch.float64)
        # a white light concentrated around d: its SH projection is Y_lm(d) per channel, plus ambient
        coefficients = lighting.sh_basis(d, 3)[:, None].expand(-1, 3) + lighting.uniform(0.5, 3).double()
        assert torch.allclose(lighting.dominant_direction(coefficients), d, atol=1e-9)
    with pytest.raises(ValueError, match="two SH bands"):
        lighting.dominant_direction(lighting.uniform(1.0, 1))


def test_a_key_light_comes_from_its_direction_and_its_radiance_swings_by_its_strength():
    directions = sphere_directions(4000, seed=3)
    for direction, strength in (([0.0, 0.0, 1.0], 0.4), ([1.0, -2.0, 0.5], 0.9)):
        d = torch.tensor(direction, dtype=torch.float64)
        light = lighting.key_light(d * 3.0, strength, (1.0, 0.98, 0.95))  # any length
        assert torch.allclose(lighting.dominant_direction(light.double()), d / d.norm(), atol=1e-6)
        white = lighting.radiance(light.double(), directions)[:, 0]  # red: band 0's radiance is 1
        assert white.max() == pytest.approx(1.0 + strength, abs=0.01)
        assert white.min() == pytest.approx(1.0 - strength, abs=0.01)
    for direction, bands in (([0.0, 0.0, 0.0], 2), ([1.0, 0.0], 2), ([0.0, 0.0, 1.0], 1)):
        with pytest.raises(ValueError, match="key light"):
            lighting.key_light(direction, 0.5, bands=bands)


def test_the_matte_ball_is_brightest_where_it_faces_the_light():
    # A camera at the world's origin looking along +z (identity camrot): x right, y down.
    rotation = np.eye(3)
    for direction, brightest in (
        ([0.0, 0.0, -1.0], (32, 32)),
        ([1.0, 0.0, 0.0], (32, 63)),
        ([0.0, -1.0, 0.0], (0, 32)),
    ):
        d = torch.tensor(direction, dtype=torch.float64)
        coefficients = lighting.sh_basis(d, 2)[:, None].expand(-1, 3) + lighting.uniform(0.5, 2).double()
        ball = lighting.matte_ball(coefficients, rotation, 64)
        grey = ball.mean(-1).numpy()
        row, column = np.unravel_index(np.argmax(grey), grey.shape)
        # (at the rim a few pixels tie: the ball is 64 px across)
        assert abs(row - brightest[0]) <= 7 and abs(column - brightest[1]) <= 7, (direction, row, column)
        assert grey[0, 0] == 0.0 and grey[63, 63] == 0.0  # outside the ball
    # Seen from the other side (half a turn about the view's y axis), a light from -z lights it least at the centre.
    d = torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64)
    coefficients = lighting.sh_basis(d, 2)[:, None].expand(-1, 3) + lighting.uniform(0.5, 2).double()
    front = lighting.matte_ball(coefficients, rotation, 64).mean(-1).numpy()
    behind = lighting.matte_ball(coefficients, np.diag([-1.0, 1.0, -1.0]), 64).mean(-1).numpy()
    assert behind[32, 32] == behind[behind > 0].min() and behind[32, 32] < 0.6 * front[32, 32], (
        behind[32, 32],
        front[32, 32],
    )
    flat = lighting.matte_ball(lighting.uniform(1.0, 2).double(), rotation, 32).mean(-1).numpy()
    assert np.allclose(flat[flat > 0], math.pi)
