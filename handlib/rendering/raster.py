"""The hard-rasteriser baseline (SMVR 4.2.2): fixed visibility, gradients only through shading.

Like PyTorch3D's hard rasteriser, each image sample is assigned the front-most
triangle it falls in; that assignment carries no gradient. The sample's colour is
interpolated from the triangle's vertices with perspective-correct barycentric
coordinates computed in torch from the projected vertices, so gradients reach the
vertices through the interpolation (and shading) only, never through silhouette
or occlusion edges.

Visibility is found by casting the samples' primary rays in Mitsuba (the same
scene geometry as the ray tracer, so both generators see identical geometry);
everything differentiable is torch. ``radiance`` mode shades with the unshadowed
SH irradiance of the interpolated normal, as rasterisers do (no shadows).
"""

from __future__ import annotations

import math
from typing import Sequence

import mitsuba as mi
import numpy as np
import torch

from handlib.geometry.cameras import Camera, film_space
from handlib.geometry.surface import HandSurface
from handlib.rendering import lighting
from handlib.rendering.scene import MitsubaScene, Rendered, RenderSettings, hand_window


def sample_positions(camera: Camera, spp: int, generator: torch.Generator, window=None) -> torch.Tensor:
    """(h, w, spp, 2) pixel positions, uniformly jittered inside each pixel of ``window``
    ((x0, y0, w, h); the whole image by default)."""
    x0, y0, width, height = window if window is not None else (0, 0, camera.width, camera.height)
    rows, cols = torch.meshgrid(torch.arange(y0, y0 + height), torch.arange(x0, x0 + width), indexing="ij")
    corner = torch.stack([cols, rows], -1).to(torch.float32)[:, :, None, :]
    return corner + torch.rand(height, width, spp, 2, generator=generator)


def first_hits(scene: mi.Scene, camera: Camera, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Front-most render-face index (N,) and hit mask (N,) of the film-space rays through ``pixels`` (N, 2)."""
    (fx, _), (cx, cy) = camera.focal, camera.princpt
    xy = pixels.detach().numpy().astype(np.float64)
    directions = np.stack([(xy[:, 0] - cx) / fx, (xy[:, 1] - cy) / fx, np.ones(len(xy))], -1)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    ray = mi.Ray3f(mi.Point3f(0.0, 0.0, 0.0), mi.Vector3f(*(directions.T.astype(np.float32))))
    hit = scene.ray_intersect_preliminary(ray)
    valid = torch.as_tensor(np.asarray(hit.is_valid()), dtype=torch.bool)
    face = torch.as_tensor(np.asarray(hit.prim_index).astype(np.int64))
    return face, valid


def perspective_barycentrics(point: torch.Tensor, corners: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """Perspective-correct barycentric weights (N, 3) of pixels ``point`` (N, 2).

    ``corners`` (N, 3, 2) are the triangle's projected vertices, ``depth`` (N, 3)
    their camera depths. Screen-space weights solve point = sum_k l_k corners_k,
    then w_k = (l_k / z_k) / sum_j (l_j / z_j).
    """
    a, b, c = corners.unbind(1)
    e1, e2, d = b - a, c - a, point - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
    l1 = (d[:, 0] * e2[:, 1] - d[:, 1] * e2[:, 0]) / det
    l2 = (e1[:, 0] * d[:, 1] - e1[:, 1] * d[:, 0]) / det
    screen = torch.stack([1.0 - l1 - l2, l1, l2], -1)
    perspective = screen / depth
    return perspective / perspective.sum(-1, keepdim=True)


def sample_texture(texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup (N, 3) of ``texture`` (H, W, 3) at ``uv`` (N, 2); texel centres at (i + 0.5) / size."""
    grid = (uv * 2.0 - 1.0).reshape(1, 1, -1, 2)
    image = texture.permute(2, 0, 1)[None]
    return torch.nn.functional.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)[
        0, :, 0
    ].T


def rasterize(
    cameras: Sequence[Camera],
    surface: HandSurface,
    settings: RenderSettings,
    coverage: MitsubaScene,
    vertices: torch.Tensor,
    texture: torch.Tensor,
    light: torch.Tensor | None,
    backgrounds: Sequence[torch.Tensor],
    seed: int,
) -> Rendered:
    """The ``raster`` generator: ``vertices`` (V, 3) mm with ``texture`` (and ``light`` in radiance
    mode) over each camera's background, visibility from rays cast at ``coverage``'s geometry."""
    vertices = surface.close(vertices)
    spp = settings.spp
    generator = torch.Generator().manual_seed(int(seed))
    faces = surface.faces.to(vertices.device)
    corner_uv = surface.uv_corners.to(vertices.device)
    texture = texture.to(torch.float32)
    if settings.mode == "radiance":
        normals = surface.normals(vertices)
        shade = lighting.irradiance(light.to(vertices.dtype), normals) / math.pi  # (V, 3)
    images, alphas = [], []
    for camera, background in zip(cameras, backgrounds):
        params = coverage.params
        positions = film_space(camera, vertices.detach().to(torch.float32))
        params["hand.vertex_positions"] = mi.Float(positions.reshape(-1).cpu().numpy())
        params.update()
        x0, y0, width, height = window = hand_window(camera, positions)  # the same window as the ray tracer
        image = background.expand(camera.height, camera.width, 3).to(texture.dtype)
        alpha = torch.zeros(camera.height, camera.width, device=vertices.device)
        if width > 0:
            pixels = sample_positions(camera, spp, generator, window).reshape(-1, 2)
            face, valid = first_hits(coverage.scene, camera, pixels)
            hit_faces = face[valid]
            corner_ids = faces[hit_faces]  # (N, 3)
            projected, depth = camera.project(vertices)
            weights = perspective_barycentrics(
                pixels[valid].to(projected.dtype), projected[corner_ids], depth[corner_ids]
            )
            hit_uv = (weights[..., None] * corner_uv[hit_faces].to(weights.dtype)).sum(1)
            colour = sample_texture(texture, hit_uv.to(torch.float32))
            if settings.mode == "radiance":
                colour = colour * (weights[..., None] * shade[corner_ids]).sum(1).to(colour.dtype)
            crop_bg = image[y0 : y0 + height, x0 : x0 + width].reshape(-1, 1, 3).expand(-1, spp, 3).reshape(-1, 3)
            samples = crop_bg.index_put((valid.nonzero()[:, 0],), colour)
            image = image.clone()
            image[y0 : y0 + height, x0 : x0 + width] = samples.reshape(height, width, spp, 3).mean(2)
            alpha[y0 : y0 + height, x0 : x0 + width] = valid.reshape(height, width, spp).to(torch.float32).mean(2)
        images.append(image)
        alphas.append(alpha)
    return Rendered(tuple(images), tuple(alphas))
