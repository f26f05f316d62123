"""How far two closed hands pass through each other (pure torch, differentiable).

A hand's surface is closed once its wrist is capped (:class:`~handlib.geometry.surface.HandSurface`),
so "inside" is defined: a point is inside when the mesh winds around it, by the generalised winding
number (the sum of the solid angles its triangles subtend, over 4 pi: 1 inside, 0 outside, robust to
small defects). A vertex of one hand inside the other has a **penetration depth**: its distance to
the other's surface. Touching costs nothing; only depth does.

The winding numbers cost points x triangles (1-2 s for two hands on a 2-core CPU); an optimiser
passes the inside sets as ``within``, from :func:`handlib.rendering.inside.inside_closed` (ray
crossings on Mitsuba's BVH, tens of milliseconds, checked against the winding numbers in
``tests/test_penetration.py``), or reuses them while the hands move less than the depths.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

#: Points per chunk when every point meets every triangle (memory ~ chunk x faces x 3 x 8 bytes).
CHUNK = 256


def winding_numbers(points: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(P,) generalised winding number of a closed triangle mesh (``vertices`` (V, 3), counter-
    clockwise ``faces`` (F, 3)) at ``points`` (P, 3): about 1 inside, 0 outside."""
    out = []
    for start in range(0, len(points), CHUNK):
        p = points[start : start + CHUNK, None, None, :]  # (P, 1, 1, 3)
        corners = vertices[faces][None] - p  # (P, F, 3, 3)
        a, b, c = corners.unbind(-2)
        la, lb, lc = a.norm(dim=-1), b.norm(dim=-1), c.norm(dim=-1)
        numerator = (a * torch.cross(b, c, dim=-1)).sum(-1)
        denominator = la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la + (c * a).sum(-1) * lb
        out.append(torch.atan2(numerator, denominator).sum(-1) / (2.0 * math.pi))
    return torch.cat(out) if out else points.new_zeros(0)


def _segment_distance(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ab = b - a
    t = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0.0, 1.0)
    return (p - (a + t[..., None] * ab)).norm(dim=-1)


def triangle_distance(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(...,) exact distance from points ``p`` to triangles ``a, b, c`` (all (..., 3)): to the plane
    where the point projects inside the triangle, else to the nearest edge."""
    normal = torch.cross(b - a, c - a, dim=-1)
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    height = ((p - a) * normal).sum(-1)
    foot = p - height[..., None] * normal
    within = torch.ones_like(height, dtype=torch.bool)
    for u, v in ((a, b), (b, c), (c, a)):
        within &= (torch.cross(v - u, foot - u, dim=-1) * normal).sum(-1) >= 0
    edges = torch.stack([_segment_distance(p, a, b), _segment_distance(p, b, c), _segment_distance(p, c, a)])
    return torch.where(within, height.abs(), edges.min(0).values)


def surface_distance(points: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(P,) distance from each point to the nearest point of the triangle mesh, exactly, computed
    only against the triangles that can be nearest: those whose bounding sphere comes closer than
    the point's nearest vertex."""
    corners = vertices[faces]  # (F, 3, 3)
    with torch.no_grad():
        centre = corners.mean(1)
        radius = (corners - centre[:, None]).norm(dim=-1).max(1).values
        bound = torch.cdist(points, vertices).min(1).values  # no triangle is farther than the nearest vertex
        pairs = ((torch.cdist(points, centre) - radius) <= bound[:, None] + 1e-9).nonzero()
    point, face = pairs[:, 0], pairs[:, 1]
    distance = triangle_distance(points[point], *corners[face].unbind(1))
    out = points.new_full((len(points),), float("inf"))
    return out.scatter_reduce(0, point, distance, reduce="amin", include_self=False)


def inside(points: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(P,) bool: which points the closed mesh winds around (only those within its bounding box
    are tested; no gradient)."""
    with torch.no_grad():
        low, high = vertices.min(0).values, vertices.max(0).values
        candidates = ((points >= low) & (points <= high)).all(-1)
        found = torch.zeros(len(points), dtype=torch.bool, device=points.device)
        if candidates.any():
            found[candidates] = winding_numbers(points[candidates], vertices, faces) > 0.5
    return found


def penetration_depths(
    points: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor, within: torch.Tensor | None = None
) -> torch.Tensor:
    """(P,) how deep each point lies inside the closed mesh (mm when the inputs are): its distance to
    the surface when inside, 0 outside. Differentiable in both the points and the mesh; ``within``
    (P,) bool, when given, says which points are inside (see :func:`inside`), e.g. to reuse it
    while the hands move less than the depths."""
    within = inside(points, vertices, faces) if within is None else within
    depths = points.new_zeros(len(points))
    if within.any():
        depths = depths.index_put((within.nonzero()[:, 0],), surface_distance(points[within], vertices, faces))
    return depths


def mutual_depths(
    first: torch.Tensor,
    first_faces: torch.Tensor,
    second: torch.Tensor,
    second_faces: torch.Tensor,
    within: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """(V1 + V2,) how deep each vertex of two closed hands lies inside the other hand (mm; 0
    outside). ``first`` / ``second``: closed-mesh vertices (V, 3) with their ``faces``; ``within``:
    which of the first's vertices are inside the second and which of the second's inside the first."""
    if within is None:
        within = (inside(first, second, second_faces), inside(second, first, first_faces))
    return torch.cat(
        [
            penetration_depths(first, second, second_faces, within[0]),
            penetration_depths(second, first, first_faces, within[1]),
        ]
    )


def interpenetration(
    first: torch.Tensor,
    first_faces: torch.Tensor,
    second: torch.Tensor,
    second_faces: torch.Tensor,
    within: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The penalty on two closed hands passing through each other: the mean over both hands' vertices
    of the squared penetration depth into the other hand (mm^2; see :func:`mutual_depths`); 0 for
    hands apart or touching."""
    return (mutual_depths(first, first_faces, second, second_faces, within) ** 2).mean()


def intersection_volume(
    first: torch.Tensor,
    first_faces: torch.Tensor,
    second: torch.Tensor,
    second_faces: torch.Tensor,
    samples: int = 20000,
    seed: int = 0,
    contains: tuple[Callable, Callable] | None = None,
) -> float:
    """Monte Carlo estimate of the volume (mm^3 for mm inputs) inside both closed meshes: uniform
    points in the overlap of their bounding boxes, the fraction inside both, times the box's volume.
    ``contains``: two functions points (N, 3) -> (N,) bool for the first and the second mesh, to
    use a faster inside test than the winding numbers (e.g. ray crossings) and more samples."""
    low = torch.maximum(first.min(0).values, second.min(0).values).detach()
    high = torch.minimum(first.max(0).values, second.max(0).values).detach()
    if (high <= low).any():
        return 0.0
    generator = torch.Generator().manual_seed(seed)
    points = low + (high - low) * torch.rand(samples, 3, generator=generator, dtype=first.dtype)
    if contains is None:
        contains = (
            lambda p: inside(p, first.detach(), first_faces),
            lambda p: inside(p, second.detach(), second_faces),
        )
    both = contains[0](points) & contains[1](points)
    return float(both.double().mean() * torch.prod(high - low).double())
