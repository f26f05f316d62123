"""Initial colour maps: the observations back-projected onto a hand mesh, per texel.

Every texel of the atlas is a point on the hand (:func:`handlib.rendering.texture.rasterize_atlas`).
Each camera that sees that point (in front of it, facing it, and not hidden by the hand
itself: a ray cast from the camera centre must first hit the hand there) contributes its
pixel colour, weighted by the squared cosine of its viewing angle (grazing views, below
``MIN_FACING``, are left out). Texels no camera sees get the
mean colour of those that were seen.
"""

from __future__ import annotations

from typing import Sequence

import mitsuba as mi
import numpy as np
import torch

from handlib.geometry.cameras import Camera
from handlib.geometry.surface import HandSurface
from handlib.rendering.raster import sample_texture
from handlib.rendering.scene import hand_mesh
from handlib.rendering.texture import dilate, rasterize_atlas

#: A texel point counts as visible when the camera ray hits within this distance of it (mm).
VISIBILITY_TOLERANCE_MM = 1.0
#: Views more grazing than this (cosine between the normal and the view ray) are left out:
#: near the silhouette of a misplaced initial mesh they mostly see the background.
MIN_FACING = 0.3


def surface_scene(surface: HandSurface, closed: torch.Tensor) -> mi.Scene:
    """A Mitsuba scene holding the closed hand mesh (``closed``: (V, 3) mm) for ray casts."""
    mesh = hand_mesh(surface, {}, False)
    params = mi.traverse(mesh)
    params["vertex_positions"] = mi.Float(np.asarray(closed, dtype=np.float32).ravel())
    params.update()
    return mi.load_dict({"type": "scene", "hand": mesh})


def visible_points(
    scene: mi.Scene, camera: Camera, points: np.ndarray, normals: np.ndarray, min_facing: float = MIN_FACING
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which surface ``points`` (N, 3) mm with unit ``normals`` the camera sees: in front of it,
    inside its image, facing it more than ``min_facing``, and not hidden by the hand. Returns the
    mask, the facing cosines and the pixel positions (N, 2)."""
    to_point = points - camera.campos
    distance = np.linalg.norm(to_point, axis=1)
    direction = to_point / distance[:, None]
    facing = -(normals * direction).sum(1)
    pixels, depth = camera.project(points)
    inside = (
        (depth > 0)
        & (facing > min_facing)
        & (pixels[:, 0] >= 0)
        & (pixels[:, 1] >= 0)
        & (pixels[:, 0] < camera.width)
        & (pixels[:, 1] < camera.height)
    )
    ray = mi.Ray3f(mi.Point3f(*(float(v) for v in camera.campos)), mi.Vector3f(*direction.T.astype(np.float32)))
    t = np.asarray(scene.ray_intersect_preliminary(ray).t)
    visible = inside & np.isfinite(t) & (t > distance - VISIBILITY_TOLERANCE_MM)
    return visible, facing, pixels


def backproject_texture(
    surface: HandSurface,
    vertices: torch.Tensor,
    cameras: Sequence[Camera],
    images: Sequence[np.ndarray],
    size: int = 512,
) -> tuple[torch.Tensor, float]:
    """(size, size, 3) colour map from ``images`` (each (H, W, 3) float in [0, 1]) of the hand
    whose model ``vertices`` (V, 3) mm are given, and the fraction of texels some camera saw."""
    closed = surface.close(vertices.detach().double())
    attributes, covered = rasterize_atlas(surface, torch.cat([closed, surface.normals(closed)], 1), size)
    points, normals = attributes[covered, :3], attributes[covered, 3:]
    scene = surface_scene(surface, closed)
    total = np.zeros((len(points), 3))
    weight = np.zeros(len(points))
    for camera, image in zip(cameras, images):
        visible, facing, pixels = visible_points(scene, camera, points, normals)
        image = torch.as_tensor(np.asarray(image, dtype=np.float64))
        extent = np.array([camera.width, camera.height], dtype=np.float64)
        colours = sample_texture(image, torch.as_tensor(pixels[visible] / extent)).numpy()
        total[visible] += colours * facing[visible, None] ** 2  # frontal views count most
        weight[visible] += facing[visible] ** 2
    seen = weight > 0
    colour = np.zeros((len(points), 3))
    colour[seen] = total[seen] / weight[seen, None]
    colour[~seen] = colour[seen].mean(0) if seen.any() else 0.5
    texture = np.zeros((size, size, 3), np.float32)
    texture[covered] = colour
    return torch.as_tensor(dilate(texture, covered, margin=max(4, size // 64))), float(seen.mean())
