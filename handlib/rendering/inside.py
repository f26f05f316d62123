"""Which points lie inside a closed hand, by counting ray crossings on Mitsuba's BVH.

The exact test (:func:`handlib.geometry.penetration.winding_numbers`) sums a solid angle over
every triangle for every point: robust, but its cost grows with points x triangles (1-2 s for two
hands on a 2-core CPU). Here each point casts a ray and counts how often it crosses the surface:
odd means inside. A ray that grazes an edge can miscount, so three fixed, unrelated directions
vote. The BVH makes it cost about as much as rendering the points once.
"""

from __future__ import annotations

import mitsuba as mi
import numpy as np
import torch

from handlib.geometry.penetration import mutual_depths
from handlib.geometry.surface import HandSurface
from handlib.rendering.backproject import surface_scene

#: Directions of the voting rays (unit vectors, chosen off every axis and diagonal).
DIRECTIONS = np.array([[0.267, 0.535, 0.802], [-0.784, 0.196, 0.589], [0.381, -0.914, 0.140]])
#: Most crossings followed per ray (a hand ray crosses at most a few fingers).
MAX_CROSSINGS = 64


def crossings(scene: mi.Scene, points: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """(N,) how many times a ray from each point along ``direction`` crosses the scene's surfaces."""
    origins = mi.Point3f(*(np.ascontiguousarray(points[:, k], dtype=np.float32) for k in range(3)))
    towards = mi.Vector3f(*(float(c) for c in direction))
    ray = mi.Ray3f(origins, towards)
    count = np.zeros(len(points), np.int64)
    active = np.ones(len(points), bool)
    for _ in range(MAX_CROSSINGS):
        hit = scene.ray_intersect(ray)
        found = np.asarray(hit.is_valid(), dtype=bool) & active
        count += found
        active = found
        if not active.any():
            break
        ray = hit.spawn_ray(towards)
    return count


def inside_closed(surface: HandSurface, closed: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(P,) bool: which ``points`` (P, 3) lie inside the closed mesh of ``surface`` with closed
    vertices ``closed`` (V', 3), by the majority of three rays' crossing parities."""
    if len(points) == 0:
        return torch.zeros(0, dtype=torch.bool)
    scene = surface_scene(surface, closed.detach().cpu().float().numpy())
    array = points.detach().cpu().double().numpy()
    votes = sum(crossings(scene, array, d / np.linalg.norm(d)) % 2 for d in DIRECTIONS)
    return torch.as_tensor(votes >= 2, device=points.device)


def mutually_inside(surfaces, closed: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """For two hands (their surfaces and closed vertices (V', 3)): which vertices of the first lie
    inside the second, and which of the second inside the first (see
    :func:`handlib.geometry.penetration.mutual_depths`)."""
    return inside_closed(surfaces[1], closed[1], closed[0]), inside_closed(surfaces[0], closed[0], closed[1])


def hand_depths(surfaces, closed: list[torch.Tensor]) -> torch.Tensor:
    """(V'_0 + V'_1,) how deep each vertex of two closed hands (their surfaces and closed vertices)
    lies inside the other hand (mm, 0 outside; differentiable): which vertices are inside comes
    from :func:`mutually_inside`, the depths from :func:`handlib.geometry.penetration.mutual_depths`."""
    within = mutually_inside(surfaces, closed)
    if not (within[0].any() or within[1].any()):
        return closed[0].new_zeros(len(closed[0]) + len(closed[1]))
    return mutual_depths(closed[0], surfaces[0].faces, closed[1], surfaces[1].faces, within)
