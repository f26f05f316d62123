"""Initial colour maps: the observations back-projected onto a hand mesh, per texel.

Every texel of the atlas is a point on the hand (:func:`handlib.rendering.texture.rasterize_atlas`).
Each camera that sees that point (in front of it, facing it, and not hidden by the hand
itself: a ray cast from the camera centre must first hit the hand there) contributes its
pixel colour, weighted by the squared cosine of its viewing angle (grazing views, below
``MIN_FACING``, are left out), unless that colour is within ``BACKGROUND_DISTANCE`` of the
camera's background colour (given) and unlike the hand's (``HAND_LIKE_Z``): near the silhouette
of a misplaced mesh a camera sees the background, which must not become skin. Texels no camera
sees are filled harmonically from the seen texels around them on the surface: each takes the mean
of its neighbours (in 3D, so across UV seams, and only among texels facing the same way, so not
across two fingers that touch), the seen ones held fixed; :class:`Baked` keeps the mask of seen
texels and what it takes to fill a texture again (:meth:`Baked.fill`).
"""

from __future__ import annotations

from dataclasses import dataclass
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
#: A pixel this close to its camera's background colour (Euclidean, RGB in [0, 1]; 0.2 is about
#: 30 levels per channel, what JPEG leaves of a flat backdrop next to a small hand) is background;
#: samples within BACKGROUND_MARGIN_PX pixels of one are left out too (a pixel on the hand's outline
#: mixes hand and background). Measured on a hand 25 px wide before saturated green, 5 mm off: 0 of
#: its texels within 0.5 of the green (23 within 0.2 without the guard), 49% seen instead of 57%.
BACKGROUND_DISTANCE = 0.2
BACKGROUND_MARGIN_PX = 2
#: ... but a pixel whose chromaticity (colour over brightness, which shading leaves alone) the hand
#: itself shows is kept: one whose robust z-score against the chromaticities where the mesh
#: projects (per channel median and median absolute deviation, plus HAND_SPREAD_FLOOR; root mean
#: square over channels) is at most HAND_LIKE_Z. A darker skin before a dark grey rig lies within
#: BACKGROUND_DISTANCE of the backdrop: judged by distance alone, a development video (peace,
#: subject 61) lost every hand pixel of one camera and 72% of its texels. Measured (closed-form
#: albedo at the closest model hand under the true light, robust PSNR over all the hand's texels,
#: distance alone -> this rule): realistic benchmark 26.52 -> 27.41, 29.00 -> 29.41 and 27.71 ->
#: 27.65 dB on three videos, ideal 25.94 -> 29.43 and 30.84 -> 31.17 dB. A hand before a backdrop
#: of its own hue, 0.8 x its colour (tests/test_backproject.py), keeps every texel seen without a
#: guard, and saturated green gives no green texel, at HAND_LIKE_Z 3, 4 and 6 alike (a z-score of
#: the colour itself, shading included, kept 97% at 4 and let green in at 6). Only the bakes at a
#: refined hand use it (``backproject_texture(hand_like=True)``: SMVR's last bake, DMVR's closed
#: form): at the start, 10 mm off, it let the backdrop at the misplaced outline into the colour map
#: and DMVR's geometry suffered (paired runs on the three videos: eps_v 11.44 / 7.03 / 3.79 mm with
#: it at the start as well, 10.20 / 7.01 / 3.88 without).
HAND_LIKE_Z, HAND_SPREAD_FLOOR = 4.0, 0.01
#: Texels are neighbours when one is among the FILL_NEIGHBOURS nearest to the other in position and
#: normal together, the normal scaled by FILL_NORMAL_MM: a surface facing the other way (another
#: finger touching this one) is 2 x FILL_NORMAL_MM farther than its distance. The fill makes every
#: unseen texel the mean of its neighbours (a discrete harmonic function, the seen texels its
#: boundary: smooth, no flat patches). An inverse-distance mean of the nearest seen texels
#: (:func:`fill_from_neighbours`) starts it and fills what no seen texel connects to. Measured on a
#: true skin texture seen by 3 or 6 synthetic cameras (38-62% of texels unseen, 256-1024 atlases):
#: PSNR on the unseen texels 27.4-28.2 dB against 26.3-26.9 for the inverse-distance mean alone.
FILL_NEIGHBOURS, FILL_NORMAL_MM = 8, 10.0
#: The fill reads at most FILL_SOURCES seen texels (an even stride over them) and finds neighbours
#: to within FILL_EPS of the exact distance: a texel far from every seen one (the back of a hand two
#: cameras saw) otherwise visits most of a dense tree. 1024^2 atlas, 3 cameras of 41x64: 107 s for
#: one fill of 154k texels from 229k exact; 2.3 s this way.
FILL_SOURCES, FILL_EPS = 20_000, 0.5
#: Colour maps taken at a refined hand leave out samples within this many pixels of its rendered
#: outline (and outside it): an outline pixel mixes hand and background, and JPEG's chroma
#: subsampling carries the background's colour a pixel or two into the hand. A video before
#: saturated green (83x128 images, 5 mm off; tests/test_dmvr.py): 56 green texels in DMVR's albedo
#: with 0 px, none with 1 px (63% of the hand's texels seen) or 2 px (49%).
OUTLINE_PX = 1
#: With a shading given, a texel whose summed weighted squared shading is below this (a texel seen
#: only in deep shadow, or only where the shading render has no hand) is not estimated but filled.
SHADOW_WEIGHT = 1e-4


@dataclass
class Baked:
    """A back-projected colour map: ``texture`` (S, S, 3), the texels that lie on the hand
    (``covered``) and those some camera saw (``seen``, a subset), and each covered texel's surface
    point and normal (``points``, ``normals``: (S, S, 3), mm) for :meth:`fill`, and how much evidence each
    texel's value rests on (``weights``), to combine several frames' colour maps."""

    texture: torch.Tensor
    seen: np.ndarray
    covered: np.ndarray
    points: np.ndarray
    normals: np.ndarray
    weights: np.ndarray | None = None  # (S, S, 3): each texel's summed sample weight (w, or w s^2)

    @property
    def fraction(self) -> float:
        """The share of the hand's texels that some camera saw."""
        return float(self.seen[self.covered].mean()) if self.covered.any() else 0.0

    def fill(self, texture: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
        """``texture`` with its unseen texels filled from the seen ones around them on the surface
        (:func:`harmonic_fill`), and the margin around the atlas's charts dilated (what a bilinear
        lookup at a chart's edge reads). ``smoothing`` > 0 smooths the seen texels too, each held
        to its value in proportion to its evidence (``weights``; see :func:`harmonic_fill`)."""
        image = np.asarray(texture.detach().cpu(), dtype=np.float64).copy()
        covered = self.covered
        evidence = None if self.weights is None else self.weights[covered].mean(-1)
        image[covered] = harmonic_fill(
            image[covered],
            self.seen[covered],
            self.points[covered],
            self.normals[covered],
            evidence=evidence,
            smoothing=smoothing,
        )
        size = image.shape[0]
        return torch.as_tensor(dilate(image.astype(np.float32), self.covered, margin=max(4, size // 64)))


def surface_features(points: np.ndarray, normals: np.ndarray, normal_scale: float) -> np.ndarray:
    """(N, 6): each point's position and its normal scaled by ``normal_scale`` (mm), the space in
    which the fill finds a texel's neighbours (see :data:`FILL_NORMAL_MM`)."""
    return np.concatenate([points, normal_scale * normals], 1)


def fill_from_neighbours(
    colours: np.ndarray,
    points: np.ndarray,
    normals: np.ndarray,
    targets: np.ndarray,
    target_normals: np.ndarray,
    normal_scale: float = FILL_NORMAL_MM,
) -> np.ndarray:
    """Colours (M, 3) for ``targets`` (M, 3) with unit ``target_normals``: the inverse-distance
    mean of the seen ``points`` (N, 3; unit ``normals``) nearest in position and normal (see
    :data:`FILL_NORMAL_MM`; approximately, see :data:`FILL_SOURCES`)."""
    from scipy.spatial import cKDTree

    stride = -(-len(points) // FILL_SOURCES)  # ceiling division: at most FILL_SOURCES sources
    colours, points, normals = colours[::stride], points[::stride], normals[::stride]
    k = min(FILL_NEIGHBOURS, len(points))
    tree = cKDTree(surface_features(points, normals, normal_scale))
    distance, index = tree.query(surface_features(targets, target_normals, normal_scale), k=k, eps=FILL_EPS, workers=-1)
    distance, index = distance.reshape(len(targets), k), index.reshape(len(targets), k)
    weight = 1.0 / (distance + 1e-6)
    return (weight[..., None] * colours[index]).sum(1) / weight.sum(1, keepdims=True)


def neighbour_laplacian(points: np.ndarray, normals: np.ndarray, normal_scale: float = FILL_NORMAL_MM):
    """The graph Laplacian (N, N; sparse CSR) of surface ``points`` (N, 3; unit ``normals``), two
    texels joined when one is among the other's :data:`FILL_NEIGHBOURS` nearest in position and
    normal together (see :data:`FILL_NORMAL_MM`)."""
    from scipy import sparse
    from scipy.spatial import cKDTree

    features = surface_features(points, normals, normal_scale)
    k = min(FILL_NEIGHBOURS, len(points) - 1)
    _, index = cKDTree(features).query(features, k=k + 1, workers=-1)  # the first is the texel itself
    rows = np.repeat(np.arange(len(points)), k)
    adjacency = sparse.coo_matrix((np.ones(rows.size), (rows, index[:, 1:].ravel())), shape=(len(points),) * 2)
    adjacency = ((adjacency + adjacency.T) > 0).astype(np.float64).tocsr()  # symmetric, each edge once
    return (sparse.diags(np.asarray(adjacency.sum(1)).ravel()) - adjacency).tocsr()


def harmonic_fill(
    colours: np.ndarray,
    seen: np.ndarray,
    points: np.ndarray,
    normals: np.ndarray,
    normal_scale: float = FILL_NORMAL_MM,
    evidence: np.ndarray | None = None,
    smoothing: float = 0.0,
) -> np.ndarray:
    """``colours`` (N, 3) of surface ``points`` (N, 3; unit ``normals``) with those not ``seen`` (N,
    bool) replaced: each becomes the mean of its neighbours (see :data:`FILL_NEIGHBOURS`), which
    solves a sparse linear system, the seen colours fixed. Without a seen texel nothing changes.

    With ``smoothing`` > 0 and each texel's ``evidence`` (N, >= 0; say, its summed sample weight)
    the seen colours move too: the result minimises ``sum e_i (x_i - c_i)^2 + smoothing * sum over
    neighbours (x_i - x_j)^2``, ``e`` the evidence over its median on the seen texels, so a texel
    that few or grazing samples saw follows its neighbours more than one that many saw (see
    ``DMVRSettings.albedo_smoothing``)."""
    from scipy import sparse
    from scipy.sparse.linalg import splu

    seen = np.asarray(seen, bool)
    smooth = smoothing > 0 and evidence is not None
    if not seen.any() or (seen.all() and not smooth):
        return colours.copy()
    laplacian = neighbour_laplacian(points, normals, normal_scale)
    unseen = ~seen
    start = colours.astype(np.float64).copy()
    if unseen.any():
        start[unseen] = fill_from_neighbours(
            colours[seen], points[seen], normals[seen], points[unseen], normals[unseen], normal_scale
        )
    # A faint pull toward the start makes the system definite where no seen texel is connected.
    anchor = 1e-6

    # Solved directly (sparse LU, minimum-degree ordering of the symmetric pattern): a surface's
    # neighbour graph is nearly planar, so the factor stays small. 383k texels on a sphere, 40%
    # unseen, on 2 cores: 1.3 s against 7.1 s for Jacobi-preconditioned conjugate gradients to a
    # relative residual of 1e-6 (the whole fill 3.3 s against 9.5 s).
    def solve(system, right):
        factor = splu(system.tocsc(), permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})
        return factor.solve(np.asarray(right, np.float64))

    if smooth:
        weight = np.where(seen, np.asarray(evidence, np.float64), 0.0)
        typical = np.median(weight[seen])
        if not typical > 0 or (weight < 0).any():
            raise ValueError("harmonic_fill: evidence must be >= 0 and positive on most seen texels.")
        weight = weight / typical
        system = sparse.diags(weight + anchor) + smoothing * laplacian
        return solve(system, (weight + anchor)[:, None] * start)
    rows = laplacian[unseen]
    system = rows[:, unseen] + anchor * sparse.identity(int(unseen.sum()))
    filled = start
    filled[unseen] = solve(system, anchor * start[unseen] - rows[:, seen] @ colours[seen])
    return filled


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


def inside_outline(coverage: np.ndarray, margin: int | None = None) -> np.ndarray:
    """(H, W) bool: the pixels a render covers fully (``coverage`` (H, W)) and that lie more than
    ``margin`` (default ``OUTLINE_PX``) pixels inside its outline. With a margin of at least 1 every
    bilinear lookup in such a pixel reads only covered pixels."""
    import cv2

    margin = OUTLINE_PX if margin is None else margin
    inside = (np.asarray(coverage) >= 0.999).astype(np.uint8)
    if margin > 0:
        inside = cv2.erode(inside, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    return inside > 0


def chromaticity(colours: np.ndarray) -> np.ndarray:
    """(..., 3) colours divided by their sum (plus 0.05, which keeps the near-black stable): what
    shading leaves alone."""
    colours = np.asarray(colours, dtype=np.float64)
    return colours / (colours.sum(-1, keepdims=True) + 0.05)


def near_background(image: np.ndarray, background, hand: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: pixels of ``image`` (H, W, 3) in [0, 1] within BACKGROUND_DISTANCE of the
    ``background`` colour, grown by BACKGROUND_MARGIN_PX. With ``hand`` (N, 3), the colours the hand
    shows in this image (say, where its mesh projects), only pixels whose chromaticity the hand
    does not show count (see :data:`HAND_LIKE_Z`): a backdrop near the skin's colour does not hide
    the hand."""
    import cv2

    image = np.asarray(image, dtype=np.float64)
    mask = (
        np.linalg.norm(image - np.asarray(torch.as_tensor(background), dtype=np.float64), axis=-1) < BACKGROUND_DISTANCE
    )
    if hand is not None and len(hand):
        hand = chromaticity(hand)
        centre = np.median(hand, axis=0)
        spread = 1.4826 * np.median(np.abs(hand - centre), axis=0) + HAND_SPREAD_FLOOR  # a standard deviation
        mask &= np.sqrt((((chromaticity(image) - centre) / spread) ** 2).mean(-1)) > HAND_LIKE_Z
    size = 2 * BACKGROUND_MARGIN_PX + 1
    return cv2.dilate(mask.astype(np.uint8), np.ones((size, size), np.uint8)) > 0


def pixel_index(pixels: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the pixels that hold the image positions ``pixels`` (N, 2; x, y)."""
    column, row = (
        np.clip(np.floor(pixels[:, i]), 0, limit - 1).astype(int)
        for i, limit in ((0, camera.width), (1, camera.height))
    )
    return row, column


@dataclass
class TexelSamples:
    """Where the cameras see the texels of a hand's atlas: the atlas's surface ``attributes``
    (S, S, 6: point in mm and normal) and the texels on the hand (``covered``), and per camera the
    samples that count (``views``): the indices of the texels it sees (into the covered ones, each
    once), their positions in its image (N, 2, in [0, 1]) and their view weights (N, the squared
    cosine of the viewing angle: frontal views count most)."""

    attributes: np.ndarray
    covered: np.ndarray
    views: list[tuple[np.ndarray, torch.Tensor, np.ndarray]]

    @property
    def count(self) -> int:
        """How many texels lie on the hand."""
        return int(self.covered.sum())

    def sample(self, camera: int, image) -> np.ndarray:
        """(N, C) bilinear lookups of ``image`` (camera ``camera``'s (H, W, C)) at its samples."""
        return sample_texture(torch.as_tensor(np.asarray(image, dtype=np.float64)), self.views[camera][1]).numpy()


def texel_samples(
    surface: HandSurface,
    vertices: torch.Tensor,
    cameras: Sequence[Camera],
    images: Sequence[np.ndarray],
    size: int,
    backgrounds: Sequence | None = None,
    scene: mi.Scene | None = None,
    masks: Sequence[np.ndarray] | None = None,
    hand_like: bool = False,
) -> TexelSamples:
    """Which texels of the (size, size) atlas of the hand at model ``vertices`` (V, 3) mm each camera
    sees in ``images`` (each (H, W, 3) in [0, 1]), and where: the samples :func:`backproject_texture`
    averages (its arguments of the same names say which are left out)."""
    closed = surface.close(vertices.detach().double())
    attributes, covered = rasterize_atlas(surface, torch.cat([closed, surface.normals(closed)], 1), size)
    points, normals = attributes[covered, :3], attributes[covered, 3:]
    scene = surface_scene(surface, closed) if scene is None else scene
    views = []
    for k, (camera, image) in enumerate(zip(cameras, images)):
        visible, facing, pixels = visible_points(scene, camera, points, normals)
        image = np.asarray(image, dtype=np.float64)
        extent = np.array([camera.width, camera.height], dtype=np.float64)
        excluded = np.zeros((camera.height, camera.width), bool)
        under = pixel_index(pixels[visible], camera)  # the pixel under each visible point
        if backgrounds is not None:
            hand = image[under] if hand_like and visible.any() else None
            excluded |= near_background(image, backgrounds[k], hand)
        if masks is not None:
            excluded |= ~np.asarray(masks[k], bool)
        visible[np.flatnonzero(visible)[excluded[under]]] = False
        views.append((np.flatnonzero(visible), torch.as_tensor(pixels[visible] / extent), facing[visible] ** 2))
    return TexelSamples(attributes, covered, views)


def backproject_texture(
    surface: HandSurface,
    vertices: torch.Tensor,
    cameras: Sequence[Camera],
    images: Sequence[np.ndarray],
    size: int = 512,
    backgrounds: Sequence | None = None,
    scene: mi.Scene | None = None,
    shading: Sequence[np.ndarray] | None = None,
    values: Sequence[np.ndarray] | None = None,
    masks: Sequence[np.ndarray] | None = None,
    fill: bool = True,
    hand_like: bool = False,
) -> Baked:
    """The (size, size, 3) colour map from ``images`` (each (H, W, 3) float in [0, 1]) of the hand
    whose model ``vertices`` (V, 3) mm are given; ``backgrounds`` (per camera, RGB in the images'
    encoding) leaves out samples that show the background. ``scene``: what the visibility rays
    are cast at (default: this hand alone); one that holds every hand of the frame
    (:func:`surface_scene` of :meth:`HandSurface.together`) keeps a hand hidden by the other
    out of its colour map.

    ``values`` (per camera, (H, W, 3), optional): what is averaged in place of ``images`` (say, the
    images in the renderer's linear space, or with each camera's colour transform undone);
    ``images`` still decide which samples show the background. ``shading`` (per camera, (H, W, 3),
    optional): what each pixel would show were the albedo white (a render of the same hand under the
    light with texture 1). The texel's value is then the albedo that explains its samples best in
    least squares, ``sum w s i / sum w s^2`` per channel (``i`` the value, ``s`` the shading's, ``w``
    the view weight), so the light and its shadows are divided out; a texel whose samples all lie in
    deep shadow counts as unseen. ``masks`` (per camera, (H, W) bool, optional): samples in a pixel
    that is False are left out too. ``fill=False`` leaves unseen texels unfilled (for a caller that
    combines several colour maps and fills once). ``hand_like=True`` keeps a pixel near the
    background colour whose chromaticity the hand shows (:data:`HAND_LIKE_Z`): for a hand whose
    pose is refined and whose ``masks`` keep its outline out; at a misplaced mesh the distance
    alone guards better (see :data:`HAND_LIKE_Z`)."""
    samples = texel_samples(surface, vertices, cameras, images, size, backgrounds, scene, masks, hand_like)
    attributes, covered = samples.attributes, samples.covered
    total = np.zeros((samples.count, 3))
    weight = np.zeros((samples.count, 3))
    for k, (index, _, view) in enumerate(samples.views):
        colours = samples.sample(k, images[k] if values is None else values[k])
        view = view[:, None]
        if shading is None:
            total[index] += colours * view
            weight[index] += view
        else:
            s = samples.sample(k, shading[k])
            total[index] += colours * s * view
            weight[index] += s * s * view
    seen = weight.min(1) > SHADOW_WEIGHT
    colour = np.full((samples.count, 3), 0.5)
    colour[seen] = total[seen] / weight[seen]
    texture = np.zeros((size, size, 3), np.float64)
    texture[covered] = colour
    seen_texels = np.zeros((size, size), bool)
    seen_texels[covered] = seen
    texel_normals = attributes[..., 3:] / (np.linalg.norm(attributes[..., 3:], axis=-1, keepdims=True) + 1e-12)
    weights = np.zeros((size, size, 3))
    weights[covered] = weight
    baked = Baked(torch.as_tensor(texture), seen_texels, covered, attributes[..., :3], texel_normals, weights)
    if fill:
        baked.texture = baked.fill(baked.texture)
    return baked
