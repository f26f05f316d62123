"""The hand's surface as the renderers see it: faces, per-corner UVs, normals (pure functions).

Hand models store UVs per triangle corner (``uv_corners`` (F, 3, 2)), as MANO's
HTML texture and the open hand do: one vertex carries several UVs where the
texture atlas is cut. The mesh is never split along those seams, and its open
boundaries (MANO's and the open hand's wrist) are closed with a fan of triangles
around the boundary's centroid: Mitsuba's projective sampling gives biased vertex
gradients on open meshes (measured on the open hand: 0.2x to 2.2x the finite
difference depending on the view; within 5% once the wrist is capped). The
texture lookup interpolates the corner UVs of the hit triangle (see
:mod:`handlib.rendering.uvtexture`), and normals come from the welded mesh.

UV convention: u runs along texture columns, v along rows; (0, 0) is the top-left
corner of texel (0, 0) of an ``(H, W, 3)`` texture, texel centres at (i + 0.5) / size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


def boundary_loops(faces: np.ndarray) -> list[list[int]]:
    """Closed loops of boundary edges (edges used by one triangle), each in the
    reverse of its triangles' winding, so that a fan over it faces outward."""
    directed = {(int(a), int(b)) for tri in faces for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0]))}
    following = {b: a for a, b in directed if (b, a) not in directed}
    loops, seen = [], set()
    for start in sorted(following):
        if start in seen:
            continue
        loop = [start]
        seen.add(start)
        while following[loop[-1]] != start:
            loop.append(following[loop[-1]])
            if loop[-1] in seen:
                raise ValueError("The mesh boundary is not a set of simple loops; cannot cap it.")
            seen.add(loop[-1])
        loops.append(loop)
    return loops


@dataclass(frozen=True)
class HandSurface:
    """A hand model's triangles, closed: model faces first, then one fan per boundary loop.

    ``faces`` (F', 3) index the model's V vertices followed by one centroid per
    loop; ``uv_corners`` (F', 3, 2) in [0, 1]; ``loops`` are the capped boundaries.
    """

    faces: torch.Tensor
    uv_corners: torch.Tensor
    num_model_vertices: int
    loops: tuple[tuple[int, ...], ...]

    @classmethod
    def create(cls, faces, uv_corners, num_vertices: int) -> "HandSurface":
        """Validate a model's ``faces`` (F, 3) and ``uv_corners`` (F, 3, 2) and cap its holes."""
        faces = np.asarray(torch.as_tensor(faces).cpu(), dtype=np.int64)
        uv = np.asarray(torch.as_tensor(uv_corners).detach().cpu(), dtype=np.float32)
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces must have shape (F, 3), got {faces.shape}.")
        if uv.shape != (faces.shape[0], 3, 2):
            raise ValueError(f"uv_corners must have shape (F, 3, 2) = {(faces.shape[0], 3, 2)}, got {uv.shape}.")
        if not np.isfinite(uv).all():
            raise ValueError("uv_corners contain NaN or infinite values.")
        if uv.min() < 0.0 or uv.max() > 1.0:
            raise ValueError(
                f"uv_corners must lie in [0, 1] (found {uv.min():.3g} .. {uv.max():.3g}); "
                "rescale the UV atlas or use the hand model's own UVs."
            )
        if faces.min() < 0 or faces.max() >= num_vertices:
            raise ValueError(f"faces index vertices outside 0..{num_vertices - 1}.")
        loops = boundary_loops(faces)
        # UVs of each boundary edge's ends as its one triangle has them, so the cap's
        # texture continues its rim's (a colour jump there would be an edge that
        # projective sampling does not see).
        edge_uv = {}
        for face, uv_face in zip(faces, uv):
            for k in range(3):
                edge_uv[(int(face[k]), int(face[(k + 1) % 3]))] = (uv_face[k], uv_face[(k + 1) % 3])
        cap_faces, cap_uv = [faces], [uv]
        for index, loop in enumerate(loops):
            centre = num_vertices + index
            ring = np.array(loop)
            following = np.roll(ring, -1)
            rim = np.array([edge_uv[(int(b), int(a))][::-1] for a, b in zip(ring, following)])  # (n, 2, 2)
            # Each cap triangle's centre corner reads the middle of its own rim edge, so the
            # cap shows its rim's colours streaked inward (one shared centre UV would land
            # anywhere in the atlas, often between islands).
            cap_faces.append(np.stack([np.full(len(ring), centre), ring, following], 1))
            cap_uv.append(np.concatenate([rim.mean(1, keepdims=True), rim], 1))
        return cls(
            torch.as_tensor(np.concatenate(cap_faces)),
            torch.as_tensor(np.concatenate(cap_uv)),
            int(num_vertices),
            tuple(tuple(loop) for loop in loops),
        )

    @classmethod
    def of(cls, model) -> "HandSurface":
        """The surface of a :class:`handlib.model.hand.HandModel` (which must carry UVs)."""
        if model.uv_corners is None:
            raise ValueError(
                "This hand model has no UVs (a MANO pickle has none); pass uv_corners (F, 3, 2) "
                "from the HTML texture model's UV file to HandSurface.create, or use the open hand."
            )
        return cls.create(model.faces, model.uv_corners, model.num_vertices)

    @classmethod
    def together(cls, surfaces: "Sequence[HandSurface]") -> "HandSurface":
        """Several hands as one surface, so that one render shows them occluding each other.

        The model vertices of hand k follow those of hands 0..k-1 (concatenate the hands' vertices
        in order; :meth:`close` then caps every wrist), and hand k's UVs move into the k-th of n
        side-by-side columns of the atlas: its texture is the k-th block of
        :func:`side_by_side` (n textures of the same size, concatenated along the width).
        """
        if not surfaces:
            raise ValueError("together needs at least one surface.")
        faces, uv, offset, count = [], [], 0, len(surfaces)
        for k, surface in enumerate(surfaces):
            model = surface.faces[: _model_face_count(surface)]
            faces.append(model + offset)
            corners = surface.uv_corners[: len(model)].clone()
            corners[..., 0] = (k + corners[..., 0]) / count
            uv.append(corners)
            offset += surface.num_model_vertices
        return cls.create(torch.cat(faces), torch.cat(uv), offset)

    @property
    def num_vertices(self) -> int:
        """Vertices of the closed mesh: the model's plus one centroid per capped loop."""
        return self.num_model_vertices + len(self.loops)

    def close(self, vertices: torch.Tensor) -> torch.Tensor:
        """Model vertices (..., V, 3) -> closed-mesh vertices (..., V + loops, 3), differentiably."""
        centres = [vertices[..., list(loop), :].mean(-2, keepdim=True) for loop in self.loops]
        return torch.cat([vertices, *centres], dim=-2)

    def normals(self, vertices: torch.Tensor) -> torch.Tensor:
        """Unit normals (..., V', 3) of the closed mesh's vertices (..., V', 3).

        Rim vertices average their side and cap faces. (Taking the side's faces alone,
        to keep the rim's normals true to the skin, turned most of a cap seen from the
        side black: its shading normals then swing from axial at the centre to radial
        at the rim. Averaging leaves a thin dark line at the rim at grazing views.)
        """
        return vertex_normals(vertices, self.faces.to(vertices.device))

    def corner_uv_array(self) -> np.ndarray:
        """(F' * 3 * 2,) float32: corner UVs in face order, as the Mitsuba texture reads them."""
        return np.ascontiguousarray(self.uv_corners.numpy(), dtype=np.float32).ravel()


def _model_face_count(surface: HandSurface) -> int:
    """How many of ``surface``'s faces are the model's own (the caps' fans come after them)."""
    return len(surface.faces) - sum(len(loop) for loop in surface.loops)


def side_by_side(textures: "Sequence[torch.Tensor]") -> torch.Tensor:
    """The atlas of :meth:`HandSurface.together`: n (H, W, 3) textures side by side, (H, n W, 3)."""
    shapes = {tuple(t.shape) for t in textures}
    if len(shapes) != 1:
        raise ValueError(f"The hands' textures must have one size to share an atlas, got {sorted(shapes)}.")
    return torch.cat(list(textures), dim=1)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (..., V, 3) of a mesh with counter-clockwise faces."""
    corners = vertices[..., faces, :]  # (..., F, 3, 3)
    face_normals = torch.cross(corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :], dim=-1)
    normals = torch.zeros_like(vertices)
    for k in range(3):
        normals = normals.index_add(-2, faces[:, k], face_normals)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)
