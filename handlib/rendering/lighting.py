"""Spherical-harmonics environment lighting (pure functions, torch).

DMVR lights the hand with an environment map written in real spherical harmonics:
``bands`` bands (degrees l = 0 .. bands-1) per colour channel, ``bands**2``
coefficients per channel; DMVR's 12 coefficients are 2 bands x RGB. Coefficients
are stored as a ``(bands**2, 3)`` tensor, row ``l*l + l + m`` holding Y_lm.

The environment's radiance in world direction w is ``L(w) = sum_lm c_lm Y_lm(w)``.
A diffuse surface of albedo rho with normal n, unshadowed, reflects
``rho / pi * E(n)`` with irradiance ``E(n) = sum_lm A_l c_lm Y_lm(n)`` (Ramamoorthi
and Hanrahan 2001, "An efficient representation for irradiance environment maps").

The lat-long image that Mitsuba's ``envmap`` plugin reads maps texel (row, col) of
an H x W image to the local direction (sin(phi) sin(theta), cos(theta),
-cos(phi) sin(theta)) with theta = pi (row + 0.5) / H and phi = 2 pi (col + 0.5) / W.
"""

from __future__ import annotations

import math

import torch

#: DMVR's default: bands 0 and 1, i.e. 4 coefficients per channel, 12 in all.
DEFAULT_BANDS = 2


def num_coefficients(bands: int) -> int:
    return bands * bands


def bands_of(coefficients: torch.Tensor) -> int:
    """Number of bands of a ``(bands**2, 3)`` coefficient tensor; ValueError otherwise."""
    if coefficients.ndim != 2 or coefficients.shape[1] != 3:
        raise ValueError(f"SH coefficients must have shape (bands**2, 3), got {tuple(coefficients.shape)}.")
    bands = math.isqrt(coefficients.shape[0])
    if bands < 1 or bands * bands != coefficients.shape[0]:
        raise ValueError(f"SH coefficients have {coefficients.shape[0]} rows; expected a square (1, 4, 9, ...).")
    if not torch.isfinite(coefficients).all():
        raise ValueError("SH coefficients contain NaN or infinite values.")
    return bands


def sh_basis(directions: torch.Tensor, bands: int) -> torch.Tensor:
    """Real orthonormal SH Y_lm at unit ``directions`` (..., 3): (..., bands**2).

    Polar angle from +z, azimuth from +x toward +y; associated Legendre functions
    without the Condon-Shortley phase.
    """
    x, y, z = directions.unbind(-1)
    phi = torch.atan2(y, x)
    sin_theta = torch.sqrt(torch.clamp(x * x + y * y, min=0.0))
    # Associated Legendre P_l^m(z) by the standard recurrences (no (-1)^m phase).
    legendre: dict[tuple[int, int], torch.Tensor] = {(0, 0): torch.ones_like(z)}
    for m in range(1, bands):
        legendre[(m, m)] = legendre[(m - 1, m - 1)] * (2 * m - 1) * sin_theta
    for m in range(bands):
        if m + 1 < bands:
            legendre[(m + 1, m)] = (2 * m + 1) * z * legendre[(m, m)]
        for l in range(m + 2, bands):
            legendre[(l, m)] = ((2 * l - 1) * z * legendre[(l - 1, m)] - (l + m - 1) * legendre[(l - 2, m)]) / (l - m)
    out = []
    for l in range(bands):
        for m in range(-l, l + 1):
            am = abs(m)
            norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - am) / math.factorial(l + am))
            if m == 0:
                out.append(norm * legendre[(l, 0)])
            elif m > 0:
                out.append(math.sqrt(2) * norm * torch.cos(m * phi) * legendre[(l, am)])
            else:
                out.append(math.sqrt(2) * norm * torch.sin(am * phi) * legendre[(l, am)])
    return torch.stack(out, dim=-1)


def dominant_direction(coefficients: torch.Tensor) -> torch.Tensor:
    """The unit direction (3,) the light's band-1 term points to, for its mean over RGB: where a
    light with at least two bands is brightest, to first order. Band 1's real SH are proportional
    to y, z and x, in that order (no Condon-Shortley phase), with one normalisation."""
    if bands_of(coefficients) < 2:
        raise ValueError("a dominant direction needs at least two SH bands (4 coefficients).")
    c = coefficients[1:4].mean(-1)
    vector = torch.stack([c[2], c[0], c[1]])
    return vector / vector.norm().clamp_min(1e-12)


def direction_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Degrees between two lights' dominant directions (:func:`dominant_direction`)."""
    cosine = dominant_direction(torch.as_tensor(a).detach().double()) @ dominant_direction(
        torch.as_tensor(b).detach().double()
    )
    return math.degrees(math.acos(float(cosine.clamp(-1.0, 1.0))))


def cosine_lobe(l: int) -> float:
    """A_l, the SH coefficient of the clamped cosine (pi, 2pi/3, pi/4, 0, ...)."""
    if l == 0:
        return math.pi
    if l == 1:
        return 2 * math.pi / 3
    if l % 2:
        return 0.0
    return (
        2
        * math.pi
        * (-1) ** (l // 2 - 1)
        / ((l + 2) * (l - 1))
        * math.factorial(l)
        / (2**l * math.factorial(l // 2) ** 2)
    )


def radiance(coefficients: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Environment radiance (..., 3) arriving from world ``directions`` (..., 3)."""
    bands = bands_of(coefficients)
    return sh_basis(directions, bands) @ coefficients


def irradiance(coefficients: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """Unshadowed irradiance (..., 3) on surfaces with unit ``normals`` (..., 3)."""
    bands = bands_of(coefficients)
    lobe = torch.tensor(
        [cosine_lobe(l) for l in range(bands) for _ in range(2 * l + 1)],
        dtype=coefficients.dtype,
        device=coefficients.device,
    )
    return sh_basis(normals, bands) @ (coefficients * lobe[:, None])


def matte_ball(coefficients: torch.Tensor, world_to_view, size: int = 64) -> torch.Tensor:
    """A picture of the light: the unshadowed irradiance (size, size, 3) on a ball, as a camera of
    rotation ``world_to_view`` (3, 3; world to camera, x right, y down, z forward: InterHand2.6M's
    ``camrot``) sees it from afar; 0 outside the ball. The ball's normal at a pixel is the view
    direction's sphere point turned back into the world, so a light that comes from behind the
    camera lights the ball's centre."""
    dtype = coefficients.dtype
    axis = (torch.arange(size, dtype=dtype) + 0.5) * (2.0 / size) - 1.0
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    inside = x * x + y * y < 1.0
    facing = torch.stack([x, y, -torch.sqrt((1.0 - x * x - y * y).clamp_min(0.0))], -1)  # toward the camera
    normals = facing @ torch.as_tensor(world_to_view, dtype=dtype)  # R^T n, as rows
    return torch.where(inside[..., None], irradiance(coefficients, normals).clamp_min(0.0), 0.0)


def latlong_directions(height: int, width: int, dtype=torch.float32) -> torch.Tensor:
    """(H, W, 3) local directions of the texel centres of Mitsuba's envmap image."""
    theta = (torch.arange(height, dtype=dtype) + 0.5) * (math.pi / height)
    phi = (torch.arange(width, dtype=dtype) + 0.5) * (2 * math.pi / width)
    theta, phi = torch.meshgrid(theta, phi, indexing="ij")
    return torch.stack([torch.sin(phi) * torch.sin(theta), torch.cos(theta), -torch.cos(phi) * torch.sin(theta)], -1)


def latlong_image(
    coefficients: torch.Tensor, local_to_world: torch.Tensor, height: int = 32, width: int = 64
) -> torch.Tensor:
    """The environment as Mitsuba's lat-long image (H, W, 3), differentiable in the coefficients.

    ``local_to_world`` (3, 3) rotates the envmap's local directions into the frame
    the coefficients are written in. Negative radiance (which low-order SH can
    produce) is clamped to zero, since no light source emits less than nothing.
    """
    local = latlong_directions(height, width, coefficients.dtype).to(coefficients.device)
    world = local @ local_to_world.to(coefficients).T
    return torch.clamp(radiance(coefficients, world), min=0.0)


def uniform(value: float | tuple[float, float, float] = 1.0, bands: int = DEFAULT_BANDS) -> torch.Tensor:
    """Coefficients of a constant environment of the given RGB radiance."""
    coefficients = torch.zeros(num_coefficients(bands), 3)
    coefficients[0] = torch.as_tensor(value, dtype=torch.float32) * math.sqrt(4 * math.pi)
    return coefficients


def key_light(
    direction, strength: float, value: float | tuple[float, float, float] = 1.0, bands: int = DEFAULT_BANDS
) -> torch.Tensor:
    """A constant environment of RGB radiance ``value`` plus, in band 1, a grey light toward
    ``direction`` (3,) whose radiance changes by ``strength`` times band 0's white per unit cosine:
    below 1 no direction's radiance is negative. Band 1's rows are Y_1,-1, Y_1,0, Y_1,1, which
    go as (y, z, x)."""
    if bands < 2:
        raise ValueError(f"a key light lives in SH band 1: it needs at least 2 bands, got {bands}.")
    d = torch.as_tensor(direction, dtype=torch.float64)
    if d.shape != (3,) or not torch.isfinite(d).all() or not torch.linalg.vector_norm(d) > 0:
        raise ValueError(f"the key light's direction must be a finite non-zero 3-vector, got {direction!r}.")
    d = d / torch.linalg.vector_norm(d)
    coefficients = uniform(value, bands)
    coefficients[1:4] = (strength * math.sqrt(4 * math.pi) / math.sqrt(3.0) * d[[1, 2, 0]]).float()[:, None]
    return coefficients
