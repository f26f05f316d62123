"""UV textures for the hand: baking per-vertex colours into the atlas (numpy).

A texture painted per UV island shows seams wherever neighbouring islands disagree.
Baking a colour defined on the surface (per vertex) into the atlas, then growing
every island a few texels outward, gives a texture that bilinear lookups read
continuously across seams.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from handlib.surface import HandSurface


def bake_vertex_colours(surface: HandSurface, colours, size: int = 256, margin: int = 4) -> torch.Tensor:
    """(size, size, 3) texture whose texels carry the barycentric blend of ``colours`` (V', 3).

    ``colours`` are per closed-surface vertex (model vertices then cap centres; see
    :meth:`HandSurface.close`). Texels outside every triangle are filled from their
    nearest island up to ``margin`` texels away, so that bilinear reads at island
    borders never mix in unrelated texels.
    """
    colours = np.asarray(torch.as_tensor(colours).detach().cpu(), dtype=np.float32)
    if colours.shape != (surface.num_vertices, 3):
        raise ValueError(f"colours must have shape ({surface.num_vertices}, 3), got {colours.shape}.")
    image = np.zeros((size, size, 3), np.float32)
    covered = np.zeros((size, size), bool)
    faces = surface.faces.numpy()
    corners = surface.uv_corners.numpy() * size - 0.5  # texel-centre coordinates
    for face, uv in zip(faces, corners):
        low = np.maximum(np.floor(uv.min(0)).astype(int), 0)
        high = np.minimum(np.ceil(uv.max(0)).astype(int), size - 1)
        if (high < low).any():
            continue
        cols, rows = np.meshgrid(np.arange(low[0], high[0] + 1), np.arange(low[1], high[1] + 1))
        points = np.stack([cols.ravel(), rows.ravel()], 1).astype(np.float64)
        e1, e2, d = uv[1] - uv[0], uv[2] - uv[0], points - uv[0]
        det = e1[0] * e2[1] - e1[1] * e2[0]
        if abs(det) < 1e-12:
            continue
        b1 = (d[:, 0] * e2[1] - d[:, 1] * e2[0]) / det
        b2 = (e1[0] * d[:, 1] - e1[1] * d[:, 0]) / det
        inside = (b1 >= -1e-6) & (b2 >= -1e-6) & (b1 + b2 <= 1 + 1e-6)
        weights = np.stack([1 - b1 - b2, b1, b2], 1)[inside]
        r, c = rows.ravel()[inside], cols.ravel()[inside]
        image[r, c] = weights @ colours[face]
        covered[r, c] = True
    return torch.as_tensor(dilate(image, covered, margin))


def dilate(image: np.ndarray, covered: np.ndarray, margin: int) -> np.ndarray:
    """Grow the covered texels of ``image`` outward by ``margin`` texels (mean of covered neighbours)."""
    image, covered = image.copy(), covered.copy()
    kernel = np.ones((3, 3), np.float32)
    for _ in range(margin):
        total = cv2.filter2D(image * covered[..., None], -1, kernel, borderType=cv2.BORDER_CONSTANT)
        count = cv2.filter2D(covered.astype(np.float32), -1, kernel, borderType=cv2.BORDER_CONSTANT)
        grow = (~covered) & (count > 0)
        image[grow] = total[grow] / count[grow, None]
        covered |= grow
    return image


#: Linear-RGB albedos (approximate, light skin) used by the procedural texture.
SKIN = np.array([0.56, 0.33, 0.24], np.float32)
NAIL = np.array([0.72, 0.50, 0.45], np.float32)


def skin_colours(vertices, tip_vertex_ids, seed: int = 0, nail_radius_mm: float = 9.0) -> np.ndarray:
    """Per-vertex albedo (V, 3): skin with smooth blotches and lighter nails at the tips.

    ``vertices`` (V, 3) mm in the hand's rest frame (any pose works; the pattern moves
    with the surface once baked). A procedural stand-in for a scanned texture.
    """
    points = np.asarray(torch.as_tensor(vertices).detach().cpu(), dtype=np.float64)
    rng = np.random.default_rng(seed)
    # A few random low-frequency waves: blotches ~2-4 cm across, +-8% in brightness.
    waves = rng.normal(size=(6, 3)) / rng.uniform(12.0, 25.0, size=(6, 1))
    phases = rng.uniform(0, 2 * np.pi, size=6)
    variation = 0.08 * np.sin(points @ waves.T + phases).mean(1, keepdims=True) * np.sqrt(6)
    colours = SKIN[None] * (1.0 + variation)
    for tip in tip_vertex_ids:
        distance = np.linalg.norm(points - points[tip], axis=1)
        weight = np.clip(1.5 - distance / nail_radius_mm, 0.0, 1.0)[:, None]
        colours = colours * (1 - weight) + NAIL[None] * weight
    return np.clip(colours, 0.0, 1.0).astype(np.float32)
