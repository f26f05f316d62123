"""A true hand that the fitted model cannot reach: articulation, shape and surface beyond its span.

A synthetic capture drawn by the very model a method fits flatters the method: some pose and
shape reproduce the truth exactly. Real hands differ from any MANO hand in at least three ways,
and a :class:`Mismatch` gives the true hand each of them:

- **the palmar arch**: the ring and little metacarpals flex toward the palm (a cupped palm). The
  MANO tree folds the metacarpals into the wrist, so no pose moves the palm's vertices;
- **per-finger length and girth**: each finger's bones are longer or shorter and the finger
  thicker or thinner by its own factor, a local change the 10 shape components do not span;
- **a smoother, finer surface**: the true surface is the fitted mesh subdivided once by Loop's
  rules (four triangles for one, every vertex moved toward its neighbours' average), so even
  the fitted mesh's own vertices lie off it.

The first two change the subject's rest surface before posing (the skeleton is regressed from
it, so the true joints move with the bones); the third applies to the posed surface. The
floor (:func:`fit_to_surface`) is the best any pose and shape of the model can do against
the true vertices in 3D, with no images: a refinement's eps_v is read against it.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from scipy import sparse
from scipy.spatial.transform import Rotation

from handlib.geometry.surface import HandSurface
from handlib.model.anatomy import palm_frame
from handlib.model.hand import HandModel, HandParams
from handlib.model.skeleton import FINGER_JOINTS

#: How much of the palmar arch each finger's metacarpal takes (carpometacarpal mobility: the
#: index and middle metacarpals are nearly fixed, the ring moves some 10-15 degrees, the little
#: finger's 20-30; Kapandji, The Physiology of the Joints, vol. 1).
ARCH_SHARE = {"index": 0.0, "middle": 0.1, "ring": 0.55, "pinky": 1.0}
#: Where along the wrist -> knuckle segment a metacarpal pivots (its carpometacarpal joint).
CMC_FRACTION = 0.15


@dataclass(frozen=True)
class Mismatch:
    """How far the true hand lies outside the fitted model's span.

    ``palm_arch``: the little metacarpal's largest flexion toward the palm (radians); each frame
    draws an arch between 30% and 100% of it. ``finger_length`` / ``finger_girth``: standard
    deviations of each finger's relative change, drawn once per subject. ``subdivide``: the true
    surface is the Loop-subdivided mesh.
    """

    palm_arch: float = 0.3
    finger_length: float = 0.05
    finger_girth: float = 0.07
    subdivide: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.palm_arch <= 0.8:
            raise ValueError(f"palm_arch is an angle in [0, 0.8] rad, got {self.palm_arch}.")
        if not (0.0 <= self.finger_length <= 0.3 and 0.0 <= self.finger_girth <= 0.3):
            raise ValueError("finger_length and finger_girth are relative spreads in [0, 0.3].")


class Proportions(NamedTuple):
    """One subject's per-finger factors (relative: 1 = the model's)."""

    length: dict[str, float]
    girth: dict[str, float]


def draw_proportions(mismatch: Mismatch, rng: np.random.Generator) -> Proportions:
    """Per-finger length and girth factors, clipped to +-3 standard deviations."""

    def factor(spread: float) -> float:
        return float(1.0 + spread * np.clip(rng.normal(), -3.0, 3.0))

    return Proportions(
        {f: factor(mismatch.finger_length) for f in FINGER_JOINTS},
        {f: factor(mismatch.finger_girth) for f in FINGER_JOINTS},
    )


def shaped_rest(model: HandModel, betas: np.ndarray) -> np.ndarray:
    """(V, 3) metres: the model's rest surface with shape ``betas`` (pose zero, no pose correctives)."""
    layer = model.layer
    beta = torch.as_tensor(np.asarray(betas, dtype=np.float64), dtype=layer.shapedirs.dtype)
    return (layer.v_template + torch.einsum("vck,k->vc", layer.shapedirs, beta)).double().numpy()


def finger_weights(model: HandModel) -> dict[str, np.ndarray]:
    """Per finger, each vertex's skinning weight on that finger's three joints (V,)."""
    weights = model.layer.lbs_weights.double().numpy()
    return {finger: weights[:, list(chain)].sum(1) for finger, chain in FINGER_JOINTS.items()}


def _segment_fraction(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per point: its position along the segment (0 at start, 1 at end, unclipped) and distance to it."""
    axis = end - start
    t = (points - start) @ axis / (axis @ axis)
    nearest = start + np.clip(t, 0.0, 1.0)[:, None] * axis
    return t, np.linalg.norm(points - nearest, axis=1)


def metacarpal_weights(model: HandModel, rest: np.ndarray, joints: np.ndarray) -> dict[str, np.ndarray]:
    """Per finger (not the thumb), how much each vertex moves with that finger's metacarpal (V,):
    all of the finger, and the palm's vertices near the wrist -> knuckle segment, fading to zero
    at the carpometacarpal pivot and shared between neighbouring metacarpals by distance."""
    wrist_weight = model.layer.lbs_weights.double().numpy()[:, 0]
    fingers = finger_weights(model)
    spacing = np.linalg.norm(joints[FINGER_JOINTS["index"][0]] - joints[FINGER_JOINTS["pinky"][0]]) / 3.0
    share, along = {}, {}
    for finger in ARCH_SHARE:
        t, distance = _segment_fraction(rest, joints[0], joints[FINGER_JOINTS[finger][0]])
        share[finger] = np.exp(-0.5 * (distance / (0.5 * spacing)) ** 2)
        along[finger] = np.clip((t - CMC_FRACTION) / (1.0 - CMC_FRACTION), 0.0, 1.0)
    total = sum(share.values()) + 1e-12
    return {f: fingers[f] + wrist_weight * along[f] * share[f] / total for f in ARCH_SHARE}


def deform_rest(
    model: HandModel, rest: np.ndarray, proportions: Proportions, arch: float, side: str = "right"
) -> np.ndarray:
    """(V, 3) metres: ``rest`` with each finger scaled (length along its bones from its base
    joint, girth across them) and the metacarpals flexed into a palmar arch of ``arch`` radians."""
    joints = model.layer.J_regressor.double().numpy() @ rest
    fingers = finger_weights(model)
    out = rest.copy()
    for finger, chain in FINGER_JOINTS.items():
        base = joints[chain[0]]
        axis = joints[chain[-1]] - base
        axis /= np.linalg.norm(axis)
        offset = rest - base
        along = offset @ axis
        radial = offset - along[:, None] * axis
        stretch = (proportions.length[finger] - 1.0) * np.maximum(along, 0.0)[:, None] * axis
        swell = (proportions.girth[finger] - 1.0) * radial
        out += fingers[finger][:, None] * (stretch + swell)
    if arch:
        frame = palm_frame(joints, side)
        axis = np.cross(frame.distal, frame.palmar)  # a positive turn brings the knuckles palmward
        moved = np.zeros_like(out)
        for finger, weight in metacarpal_weights(model, out, joints).items():
            pivot = joints[0] + CMC_FRACTION * (joints[FINGER_JOINTS[finger][0]] - joints[0])
            turn = Rotation.from_rotvec(ARCH_SHARE[finger] * arch * axis)
            moved += weight[:, None] * (turn.apply(out - pivot) + pivot - out)
        out = out + moved
    return out


def true_model(model: HandModel, betas: np.ndarray, rest: np.ndarray) -> HandModel:
    """A copy of ``model`` whose surface with shape ``betas`` and pose zero is ``rest`` (V, 3) m:
    the same skinning and pose correctives, its skeleton regressed from the new surface."""
    twin = copy.deepcopy(model)
    offset = rest - shaped_rest(model, betas)
    layer = twin.layer
    layer.v_template = layer.v_template + torch.as_tensor(offset, dtype=layer.v_template.dtype)
    return twin


def loop_subdivision(faces: np.ndarray, num_vertices: int) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
    """One step of Loop subdivision of a triangle mesh, as a linear map.

    Returns (S, faces', edge_of): new vertices = S @ old vertices, the V old vertices first
    (moved by Loop's even rule, Warren's weights) then one per edge (odd rule); ``faces'``
    (4F, 3); ``edge_of`` (F, 3) the new vertex on each face's edge k -> k+1. Boundary edges (a
    mesh with holes) take their midpoints and boundary vertices stay put.
    """
    faces = np.asarray(faces, dtype=np.int64)
    pairs = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    keys = np.sort(pairs, axis=1)
    edges, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    num_faces, num_edges = len(faces), len(edges)
    edge_of = inverse.reshape(3, num_faces).T  # (F, 3)
    rows, cols, values = [], [], []
    # Odd vertices: 3/8 of the edge's ends, 1/8 of the two opposite corners (midpoint on a boundary).
    opposite = np.concatenate([faces[:, 2], faces[:, 0], faces[:, 1]])
    interior = counts[inverse] == 2
    for end in (0, 1):
        rows.append(num_vertices + inverse)
        cols.append(keys[:, end])
        values.append(np.where(interior, 3.0 / 16.0, 0.25))  # each edge is listed by its 2 faces
    rows.append(num_vertices + inverse)
    cols.append(opposite)
    values.append(np.where(interior, 1.0 / 8.0, 0.0))
    # Even vertices: (1 - n beta) v + beta * sum of neighbours.
    neighbours = [set() for _ in range(num_vertices)]
    boundary = np.zeros(num_vertices, bool)
    for (a, b), count in zip(edges, counts):
        neighbours[a].add(b)
        neighbours[b].add(a)
        if count == 1:
            boundary[[a, b]] = True
    for v in range(num_vertices):
        n = len(neighbours[v])
        if boundary[v] or n == 0:
            rows.append([v]), cols.append([v]), values.append([1.0])
            continue
        beta = 3.0 / 16.0 if n == 3 else 3.0 / (8.0 * n)
        rows.append([v] * (n + 1)), cols.append([v, *neighbours[v]]), values.append([1 - n * beta] + [beta] * n)
    matrix = sparse.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
        shape=(num_vertices + num_edges, num_vertices),
    )
    fine = split_in_four(faces, num_vertices + edge_of)
    return matrix, fine, edge_of


def split_in_four(corners: np.ndarray, middles: np.ndarray) -> np.ndarray:
    """The four triangles of each face, as Loop subdivision orders them: per face (F, 3, ...) its
    ``corners`` a, b, c and the ``middles`` of its edges a->b, b->c, c->a; (4F, 3, ...). The same
    split serves vertex indices and per-corner UVs."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    ab, bc, ca = middles[:, 0], middles[:, 1], middles[:, 2]
    return np.concatenate([np.stack(t, 1) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))])


@dataclass(frozen=True)
class TrueSurface:
    """The surface the truth is drawn with: the model's closed surface, optionally subdivided.

    ``surface`` is what a renderer draws; :meth:`vertices` maps the true hand's posed model
    vertices (V, 3) mm to what that renderer takes, and :meth:`model_vertices` to the points that correspond to the
    model's V vertices (where eps_v is measured).
    """

    base: HandSurface
    surface: HandSurface
    matrix: sparse.csr_matrix | None

    @classmethod
    def of(cls, model: HandModel, subdivide: bool) -> "TrueSurface":
        base = HandSurface.of(model)
        if not subdivide:
            return cls(base, base, None)
        matrix, faces, _ = loop_subdivision(base.faces.numpy(), base.num_vertices)
        uv = base.uv_corners.numpy()
        corner_uv = split_in_four(uv, (uv + np.roll(uv, -1, axis=1)) / 2.0)  # edge k -> k+1's middle UV
        return cls(base, HandSurface.create(faces, corner_uv, matrix.shape[0]), matrix)

    def vertices(self, model_vertices: torch.Tensor) -> torch.Tensor:
        """What a renderer of ``surface`` takes: the model's vertices, or the subdivided closed mesh's."""
        if self.matrix is None:
            return model_vertices
        closed = self.base.close(model_vertices)
        return torch.as_tensor(self.matrix @ closed.double().numpy(), dtype=model_vertices.dtype)

    def model_vertices(self, model_vertices: torch.Tensor) -> torch.Tensor:
        return self.vertices(model_vertices)[: self.base.num_model_vertices]


#: Floors kept (:func:`fit_to_surface`): a study draws one truth under several noises and views.
FLOORS_KEPT = 64
_floors: dict[str, tuple[HandParams, float]] = {}


def fit_to_surface(
    model: HandModel, target: torch.Tensor, start: HandParams, iterations: int = 500
) -> tuple[HandParams, float]:
    """The floor: the pose, shape and translation of ``model`` closest to the true vertices
    ``target`` (V, 3) mm in mean vertex distance (L-BFGS from ``start``, batch 1), and that distance.
    The same model, target, start and iterations give the same fit, so it is computed once and
    kept (at most :data:`FLOORS_KEPT`): 500 iterations take seconds."""
    digest = hashlib.sha1(str(iterations).encode())
    fields = (start.global_orient, start.hand_pose, start.betas, start.transl)
    for tensor in [*model.state_dict().values(), target, *fields]:
        digest.update(np.ascontiguousarray(torch.as_tensor(tensor).detach().cpu().numpy()).tobytes())
    key = digest.hexdigest()
    if key not in _floors:
        if len(_floors) >= FLOORS_KEPT:
            _floors.pop(next(iter(_floors)))
        _floors[key] = _fit(model, target, start, iterations)
    fitted, reached = _floors[key]
    return HandParams(
        fitted.global_orient.clone(), fitted.hand_pose.clone(), fitted.betas.clone(), fitted.transl.clone()
    ), reached


def _fit(model: HandModel, target: torch.Tensor, start: HandParams, iterations: int) -> tuple[HandParams, float]:
    names = ("global_orient", "hand_pose", "betas", "transl")
    unknowns = [getattr(start, n).detach().clone().double().requires_grad_(True) for n in names]
    twin = copy.deepcopy(model).double()
    target = target.detach().double()

    def distance() -> torch.Tensor:
        return (twin(HandParams(*unknowns)).vertices[0] - target).norm(dim=-1).mean()

    solver = torch.optim.LBFGS(
        unknowns, lr=1.0, max_iter=iterations, tolerance_change=1e-12, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        solver.zero_grad()
        value = distance()
        value.backward()
        return value

    solver.step(closure)
    with torch.no_grad():
        reached = float(distance())
    fitted = HandParams(*(u.detach().to(getattr(start, n).dtype) for u, n in zip(unknowns, names)))
    return fitted, reached
