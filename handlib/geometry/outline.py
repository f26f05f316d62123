"""Outlines of hand meshes drawn over camera images: where an annotation lies in each view."""

from __future__ import annotations

import numpy as np


def mesh_box(camera, meshes: list[np.ndarray], margin: int = 0) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the pixels of ``camera``'s image that the meshes ((V, 3) mm world
    vertices each) cover, plus ``margin`` pixels, clipped to the image."""
    pixels = np.concatenate([camera.project(np.asarray(v, dtype=np.float64))[0] for v in meshes])
    x0, y0 = (int(max(0, np.floor(pixels[:, k].min()) - margin)) for k in (0, 1))
    x1 = int(min(camera.width, np.ceil(pixels[:, 0].max()) + margin))
    y1 = int(min(camera.height, np.ceil(pixels[:, 1].max()) + margin))
    return x0, y0, x1, y1


def outline_overlay(
    image: np.ndarray,
    camera,
    meshes: list[tuple],
    faces: "np.ndarray | list[np.ndarray]",
    upscale: int = 4,
    thickness: int = 1,
    crop_margin: int | None = None,
) -> np.ndarray:
    """``image`` (H, W, 3) uint8 RGB, enlarged ``upscale`` times, with the silhouette outline of
    each mesh ((V, 3) mm world vertices, RGB colour, and optionally its own line thickness) as
    ``camera`` sees it drawn over it, in order. ``faces``: one (F, 3) array for every mesh, or a
    list with one per mesh (a right and a left hand). With
    ``crop_margin`` (pixels) the result is cropped to the meshes' extent plus that margin."""
    import cv2

    height, width = image.shape[:2]
    projected = [(camera.project(np.asarray(v, dtype=np.float64)), colour, *width) for v, colour, *width in meshes]
    x0, y0 = 0, 0
    if crop_margin is not None:
        x0, y0, x1, y1 = mesh_box(camera, [m[0] for m in meshes], crop_margin)
        image = image[y0:y1, x0:x1]
        height, width = image.shape[:2]
    canvas = cv2.resize(image, (width * upscale, height * upscale), interpolation=cv2.INTER_NEAREST)
    per_mesh = faces if isinstance(faces, (list, tuple)) else [faces] * len(projected)
    for ((pixels, depth), colour, *width), faces in zip(projected, per_mesh):
        faces = np.asarray(faces)
        mask = np.zeros(canvas.shape[:2], np.uint8)
        corners = np.round((pixels[faces] - (x0, y0)) * upscale * 8).astype(np.int32)  # 3 bits of sub-pixel precision
        in_front = (depth[faces] > 0).all(1)
        for triangle in corners[in_front]:  # one by one: fillPoly's even-odd rule would cut overlaps out
            cv2.fillConvexPoly(mask, triangle, 255, lineType=cv2.LINE_8, shift=3)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        line = width[0] if width else thickness
        cv2.drawContours(canvas, contours, -1, tuple(int(c) for c in colour), line, cv2.LINE_AA)
    return canvas
