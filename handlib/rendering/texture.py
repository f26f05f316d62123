"""UV textures for the hand: baking surface functions into the atlas, and a procedural skin.

A texture painted per UV island shows seams wherever neighbouring islands disagree.
Here colours are functions of the *surface* (a 3D point and its normal on the hand
at rest), evaluated at every texel's surface point and baked into the atlas, whose
islands are then grown a few texels outward: bilinear reads are continuous across
seams, and the ray tracer's gradients (which only see geometric edges) stay right.

:func:`skin_texture` is handlib's stand-in for the licence-gated HTML texture model:
skin tones from light to dark, lighter palms, darker creases at the finger joints and
palm lines, fingernails, low-frequency blotches and fine noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from handlib.geometry.surface import HandSurface

#: Linear-RGB albedos of skin tones, light to dark (approximate; sRGB ~ #f1c8b0 .. #5a3823).
SKIN_TONES = {
    "very_light": (0.80, 0.56, 0.44),
    "light": (0.66, 0.42, 0.31),
    "medium": (0.50, 0.29, 0.19),
    "tan": (0.36, 0.20, 0.12),
    "brown": (0.22, 0.12, 0.07),
    "dark": (0.11, 0.06, 0.035),
}
NAIL = np.array([0.75, 0.55, 0.50], np.float32)


#: Atlas layouts kept (:func:`atlas_layout`): a few surfaces (one hand, two hands) at a few sizes.
LAYOUTS_KEPT = 16
_layouts: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def atlas_layout(surface: HandSurface, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which texels of a ``size`` atlas the triangles cover: flat texel indices (N,) into
    (size, size), each one's triangle's vertex indices (N, 3) and barycentric weights (N, 3).
    A texel on the edge of two triangles belongs to the later one. It depends only on the
    faces and UVs, so it is computed once per surface and size (a loop over the triangles:
    ~0.7 s for a hand) and kept (at most :data:`LAYOUTS_KEPT`)."""
    faces = np.ascontiguousarray(surface.faces.numpy())
    corners = np.ascontiguousarray(surface.uv_corners.numpy(), dtype=np.float64)
    key = (size, faces.shape, hash(faces.tobytes()), hash(corners.tobytes()))
    if key not in _layouts:
        if len(_layouts) >= LAYOUTS_KEPT:
            _layouts.pop(next(iter(_layouts)))
        _layouts[key] = _compute_layout(faces, corners * size - 0.5, size)  # texel-centre coordinates
    return _layouts[key]


def _compute_layout(faces: np.ndarray, corners: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    texels, owners, blends = [], [], []
    for index, uv in enumerate(corners):
        low = np.maximum(np.floor(uv.min(0)).astype(int), 0)
        high = np.minimum(np.ceil(uv.max(0)).astype(int), size - 1)
        e1, e2 = uv[1] - uv[0], uv[2] - uv[0]
        det = e1[0] * e2[1] - e1[1] * e2[0]
        if (high < low).any() or abs(det) < 1e-12:
            continue
        cols, rows = np.meshgrid(np.arange(low[0], high[0] + 1), np.arange(low[1], high[1] + 1))
        d = np.stack([cols.ravel(), rows.ravel()], 1) - uv[0]
        b1 = (d[:, 0] * e2[1] - d[:, 1] * e2[0]) / det
        b2 = (e1[0] * d[:, 1] - e1[1] * d[:, 0]) / det
        inside = (b1 >= -1e-6) & (b2 >= -1e-6) & (b1 + b2 <= 1 + 1e-6)
        texels.append(rows.ravel()[inside] * size + cols.ravel()[inside])
        owners.append(np.full(int(inside.sum()), index))
        blends.append(np.stack([1 - b1 - b2, b1, b2], 1)[inside])
    texel, owner, blend = np.concatenate(texels), np.concatenate(owners), np.concatenate(blends)
    _, last = np.unique(texel[::-1], return_index=True)  # the later triangle wins a shared texel
    keep = len(texel) - 1 - last
    return texel[keep], faces[owner[keep]], blend[keep]


def rasterize_atlas(surface: HandSurface, attributes, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-texel barycentric blend (size, size, k) of per-vertex ``attributes`` (V', k), and
    the mask of texels whose centre lies in some triangle."""
    attributes = np.asarray(torch.as_tensor(attributes).detach().cpu(), dtype=np.float64)
    if attributes.ndim != 2 or attributes.shape[0] != surface.num_vertices:
        raise ValueError(f"attributes must have shape ({surface.num_vertices}, k), got {attributes.shape}.")
    texel, corners, weights = atlas_layout(surface, size)
    image = np.zeros((size * size, attributes.shape[1]), np.float64)
    image[texel] = np.einsum("nk,nkc->nc", weights, attributes[corners])
    covered = np.zeros(size * size, bool)
    covered[texel] = True
    return image.reshape(size, size, -1), covered.reshape(size, size)


def dilate(image: np.ndarray, covered: np.ndarray, margin: int) -> np.ndarray:
    """Grow the covered texels of ``image`` outward by ``margin`` texels (mean of covered neighbours)."""
    image, covered = image.astype(np.float32), covered.copy()
    kernel = np.ones((3, 3), np.float32)
    for _ in range(margin):
        total = cv2.filter2D(image * covered[..., None], -1, kernel, borderType=cv2.BORDER_CONSTANT)
        count = cv2.filter2D(covered.astype(np.float32), -1, kernel, borderType=cv2.BORDER_CONSTANT)
        grow = (~covered) & (count > 0)
        image[grow] = total[grow] / count[grow, None]
        covered |= grow
    return image


def bake_vertex_colours(surface: HandSurface, colours, size: int = 256, margin: int = 4) -> torch.Tensor:
    """(size, size, 3) texture carrying the barycentric blend of per-vertex ``colours`` (V', 3)
    (closed-surface vertices: the model's, then the cap centres; see :meth:`HandSurface.close`)."""
    colours = np.asarray(torch.as_tensor(colours).detach().cpu(), dtype=np.float32)
    if colours.shape != (surface.num_vertices, 3):
        raise ValueError(f"colours must have shape ({surface.num_vertices}, 3), got {colours.shape}.")
    image, covered = rasterize_atlas(surface, colours, size)
    return torch.as_tensor(dilate(image, covered, margin))


def _blotches(points: np.ndarray, seed: int, amplitude: float = 0.08) -> np.ndarray:
    """(N, 1) smooth relative brightness changes, blotches ~2-4 cm across."""
    rng = np.random.default_rng(seed)
    waves = rng.normal(size=(6, 3)) / rng.uniform(12.0, 25.0, size=(6, 1))
    phases = rng.uniform(0, 2 * np.pi, size=6)
    return amplitude * np.sin(points @ waves.T + phases).mean(1, keepdims=True) * np.sqrt(6)


@dataclass(frozen=True)
class SkinStyle:
    """Parameters of the procedural skin (all albedos linear RGB)."""

    tone: str = "light"
    palm_lightening: float = 0.35  # blend of the palm toward a lighter, pinker tone
    crease_darkening: float = 0.35  # at the finger joint creases and palm lines
    crease_width_mm: float = 1.2
    blotch_amplitude: float = 0.08
    noise_amplitude: float = 0.03  # fine per-texel noise (relative)
    nail_length_mm: float = 10.0


def skin_texture(
    surface: HandSurface,
    rest_vertices,
    rest_joints,
    tip_vertex_ids,
    style: SkinStyle = SkinStyle(),
    seed: int = 0,
    size: int = 1024,
    side: str = "right",
) -> torch.Tensor:
    """(size, size, 3) linear-RGB albedo of a procedural skin, in the model's UV atlas.

    ``rest_vertices`` (V, 3) and ``rest_joints`` (16, 3), both mm, are the hand in its template
    pose (``flat_hand_mean=True``, zero pose), where the features are placed: creases
    across each finger joint on the palmar side (and faintly on the back), three palm
    lines, nails on the back of each fingertip.
    """
    from handlib.model.anatomy import palm_frame
    from handlib.model.skeleton import FINGER_JOINTS

    if style.tone not in SKIN_TONES:
        raise ValueError(f"Unknown skin tone {style.tone!r}; known: {', '.join(SKIN_TONES)}.")
    rng = np.random.default_rng(seed)
    vertices = surface.close(torch.as_tensor(rest_vertices, dtype=torch.float64))
    normals = surface.normals(vertices)
    joints = np.asarray(torch.as_tensor(rest_joints).detach().cpu(), dtype=np.float64)
    frame = palm_frame(joints, side)
    attributes, covered = rasterize_atlas(surface, torch.cat([vertices, normals], 1), size)
    points, normal = attributes[covered, :3], attributes[covered, 3:]
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    palmar = normal @ frame.palmar  # +1 palm side, -1 back

    base = np.asarray(SKIN_TONES[style.tone])
    palm_tone = base + (np.array([0.80, 0.55, 0.48]) - base) * 0.5  # lighter and pinker
    weight = np.clip((palmar - 0.1) / 0.5, 0.0, 1.0)[:, None] * style.palm_lightening
    colour = base * (1 - weight) + palm_tone * weight
    colour = colour * (1 + _blotches(points, seed, style.blotch_amplitude))

    # Creases: thin bands across each finger joint (MCP, PIP, DIP), strongest on the palm side.
    crease = np.zeros(len(points))
    for chain in FINGER_JOINTS.values():
        for joint, child in zip(chain, (*chain[1:], None)):
            centre = joints[joint]
            axis = (joints[child] - centre) if child is not None else (centre - joints[chain[-2]])
            axis /= np.linalg.norm(axis)
            along = (points - centre) @ axis
            radial = np.linalg.norm((points - centre) - along[:, None] * axis, axis=1)
            band = np.exp(-0.5 * (along / style.crease_width_mm) ** 2) * (radial < 14.0)
            side_weight = np.where(palmar > 0, 1.0, 0.35)
            crease = np.maximum(crease, band * side_weight)
    # Palm lines: three gently tilted bands across the palm (heart, head, life lines).
    wrist, middle_base = joints[0], joints[FINGER_JOINTS["middle"][0]]
    length = np.linalg.norm(middle_base - wrist)
    in_palm = (
        (palmar > 0.3)
        & ((points - wrist) @ frame.distal > 0.15 * length)
        & ((points - wrist) @ frame.distal < 0.95 * length)
    )
    for offset, tilt in ((0.78, 0.15), (0.6, -0.1), (0.35, 0.6)):
        centre = wrist + frame.distal * length * offset
        direction = frame.distal + tilt * frame.radial
        direction /= np.linalg.norm(direction)
        distance = (points - centre) @ direction
        band = np.exp(-0.5 * (distance / (style.crease_width_mm * 0.8)) ** 2) * in_palm
        crease = np.maximum(crease, band * 0.8)
    colour = colour * (1 - style.crease_darkening * crease[:, None])

    # Nails: the back of each fingertip, within nail_length of the tip.
    model_vertices = vertices[: surface.num_model_vertices].numpy()
    for tip in tip_vertex_ids:
        distance = np.linalg.norm(points - model_vertices[tip], axis=1)
        nail = np.clip((style.nail_length_mm - distance) / 2.0, 0, 1) * np.clip((-palmar - 0.2) / 0.3, 0, 1)
        colour = colour * (1 - nail[:, None]) + NAIL * nail[:, None]

    colour = colour * (1 + style.noise_amplitude * rng.standard_normal((len(points), 1)))
    image = np.zeros((size, size, 3), np.float32)
    image[covered] = np.clip(colour, 0.0, 1.0)
    return torch.as_tensor(dilate(image, covered, margin=max(4, size // 128)))


def model_skin_texture(
    model, style: SkinStyle = SkinStyle(), betas=None, seed: int = 0, size: int = 1024
) -> torch.Tensor:
    """:func:`skin_texture` for a :class:`handlib.model.hand.HandModel` of shape ``betas`` (10,),
    its features placed on the model's template pose (whatever its ``flat_hand_mean``)."""
    from handlib.model.gestures import model_hand_pose
    from handlib.model.hand import HandParams

    surface = HandSurface.of(model)
    betas = torch.zeros(1, 10) if betas is None else torch.as_tensor(betas, dtype=torch.float32).reshape(1, 10)
    with torch.no_grad():
        rest = model(HandParams.create(1, hand_pose=model_hand_pose(model, np.zeros(45)), betas=betas))
    return skin_texture(
        surface, rest.vertices[0], rest.joints[0], model.tip_vertex_ids, style, seed=seed, size=size, side=model.side
    )
