"""A Mitsuba texture that looks up an RGB image through per-corner UVs of the hit triangle.

Mitsuba meshes carry one UV per vertex; hand models carry one per triangle corner.
Rather than split the mesh along UV seams (which opens false silhouettes, see
:mod:`handlib.geometry.surface`), the hand mesh has no UVs at all: Mitsuba then reports the
hit's barycentric coordinates (b1, b2) in ``si.uv``, and this texture turns them
into the atlas UV ``(1 - b1 - b2) uv0 + b1 uv1 + b2 uv2`` of triangle
``si.prim_index`` and reads the image bilinearly (clamped at the border).
Both the image (``data``) and, through the barycentrics, the vertices get gradients.
"""

from __future__ import annotations

import functools

import drjit as dr
import mitsuba as mi
import numpy as np

from handlib.rendering.backend import ensure_variant


@functools.cache
def _texture_class(variant: str):
    class CornerUVTexture(mi.Texture):
        """RGB image (H, W, 3) addressed by per-corner UVs (F * 3 * 2 floats)."""

        def __init__(self, corner_uv: np.ndarray, image: np.ndarray):
            super().__init__(mi.Properties())
            self.corner_uv = mi.Float(corner_uv)
            self.data = mi.TensorXf(np.ascontiguousarray(image, dtype=np.float32))

        def _lookup(self, si, active):
            face, b1, b2 = si.prim_index * 3, si.uv.x, si.uv.y
            uv = (
                dr.gather(mi.Point2f, self.corner_uv, face, active) * (1.0 - b1 - b2)
                + dr.gather(mi.Point2f, self.corner_uv, face + 1, active) * b1
                + dr.gather(mi.Point2f, self.corner_uv, face + 2, active) * b2
            )
            height, width = self.data.shape[0], self.data.shape[1]
            x, y = uv.x * width - 0.5, uv.y * height - 0.5
            x0, y0 = dr.floor(x), dr.floor(y)
            tx, ty = x - x0, y - y0
            col0 = mi.UInt32(dr.clip(mi.Int32(x0), 0, width - 1))
            col1 = mi.UInt32(dr.clip(mi.Int32(x0) + 1, 0, width - 1))
            row0 = mi.UInt32(dr.clip(mi.Int32(y0), 0, height - 1))
            row1 = mi.UInt32(dr.clip(mi.Int32(y0) + 1, 0, height - 1))

            def texel(row, col):
                return dr.gather(mi.Color3f, self.data.array, row * width + col, active)

            top = texel(row0, col0) * (1.0 - tx) + texel(row0, col1) * tx
            bottom = texel(row1, col0) * (1.0 - tx) + texel(row1, col1) * tx
            return top * (1.0 - ty) + bottom * ty

        def eval(self, si, active=True):
            return self._lookup(si, active)

        def eval_3(self, si, active=True):
            return self._lookup(si, active)

        def eval_1(self, si, active=True):
            return mi.luminance(self._lookup(si, active))

        def mean(self):
            return dr.mean(self.data.array)

        def max(self):
            return 1.0

        def is_spatially_varying(self):
            # False keeps Mitsuba from importance-sampling the image through mesh UVs, which
            # this mesh does not have; only the hand's own emission/albedo reads it.
            return False

        def traverse(self, callback):
            callback.put("data", self.data, mi.ParamFlags.Differentiable)

        def parameters_changed(self, keys=None):
            pass

        def to_string(self):
            return f"CornerUVTexture[{self.data.shape}]"

    return CornerUVTexture


def corner_uv_texture(corner_uv: np.ndarray, image: np.ndarray) -> mi.Texture:
    """A texture instance for the current Mitsuba variant."""
    return _texture_class(ensure_variant())(corner_uv, image)
