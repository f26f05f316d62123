"""DMVR: refinement of a whole multi-view video (section 3 of the DMVR paper).

Unknowns, for a video of T frames seen by C cameras: per frame a pose corrective (global
rotation 3, translation 3) and an articulation corrective (45); one shape (10) for the
video; one hand texture (albedo, as levels of detail, :mod:`handlib.methods.lod`); one SH
environment light; one linear colour transform per camera. Energy::

    L = lambda_data L_data + lambda_prior L_prior
    L_data  = sum over (c, t) of || srgb(T_c(R(v_t, c))) - I_ct ||                  (eq. 3)
              + edge_weight * || W_ct (srgb(T_c(R)) - I_ct) ||, W_ct = Canny(I) xor Canny(R)
    L_prior = || a - BF(a) ||,  a (T, 45) = annotation + articulation corrective     (eq. 4)

with the norms as the paper writes them, Euclidean over all of an image's pixels and
channels (intensities in [0, 1]) and over the whole (T, 45) articulation signal: the two
terms' balance at lambda_data = lambda_prior = 1 is the paper's. A per-pixel mean in place
of the image norm makes the prior about a thousand times stronger, and it then overrides the
images: on a development video (relaxed/30, 4 frames holding the gesture, 4 cameras of
167x256, 50 iterations, from 10 mm) every feature on left 6.44 mm and no prior 2.58-2.98 mm;
with the paper's norms all four combinations of edges and prior end at 2.02-2.12 mm.

with R the ``radiance`` render (diffuse albedo under the SH light, with shadows), T_c applied to
the hand alone, over each camera's background plate (its view without the hand, estimated from the
video: a departure, ``background``), compared in the images' sRGB encoding. Gradients are
accumulated frame by frame: one frame's C renders are in memory at a time, whatever T is.

After the optimisation the light is estimated again at the refined geometry and colour transforms,
as the one under which each texel's albedo is one colour in every frame (:mod:`handlib.methods.light`,
``light_estimate="consistent"``), and the albedo in closed form under it (:func:`demodulated_albedo`,
``albedo="demodulated"``) rather than taken from the optimiser's 4-sample gradient steps (two
departures from the paper, on the book's Differences page).

Each feature (edges, temporal prior, lighting, colour transforms) can be switched off for
the ablation; without lighting the light stays uniform white. The light is grey by default
(``light_gauge``): see the book's Differences page.

Two hands (:func:`refine_videos`, beyond the paper): both hands of a video are rendered in one
scene in every frame under one light, each with its own shape, per-frame correctives, albedo
(back-projected with the other hand in the way of the rays) and temporal prior, and each frame's
energy gains ``penetration_weight * E3`` (:func:`handlib.methods.together.penetration_energy`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from handlib.geometry.cameras import Camera
from handlib.geometry.surface import HandSurface, side_by_side
from handlib.methods import lod, metrics
from handlib.methods.light import consistent_light, frame_inputs, shading_renderer, shading_sums
from handlib.methods.loop import optimise
from handlib.methods.observations import PLATE_MARGIN, background_colours, background_plates, observed_images
from handlib.methods.schedule import DMVR_GROUPS, DMVR_SCHEDULE, Stage
from handlib.methods.temporal import temporal_prior
from handlib.methods.together import occluders, penetration_energy
from handlib.model.hand import HandModel, HandParams
from handlib.rendering import lighting
from handlib.rendering.backproject import SHADOW_WEIGHT, Baked, backproject_texture
from handlib.rendering.colour import (
    apply_colour_transform,
    identity_colour_transforms,
    srgb_decode,
    srgb_encode,
)
from handlib.rendering.renderer import Rendered, Renderer, RenderSettings
from handlib.rendering.scene import Backdrop, Layout

#: Canny thresholds (on 0-255 grey levels) for the edge term, and the edge maps' dilation (px).
CANNY_LOW, CANNY_HIGH = 40, 120
EDGE_DILATION = 1
#: Gaussian blur (px) before Canny, on image and render alike. At DMVR's 4 spp Canny finds the
#: render's Monte Carlo noise: without it, the edges of a 4-spp render of the true hand differ
#: from a 256-spp render's on about as many pixels as the render has edges (97%, quick-profile
#: videos); with sigma 1 px on 21% (1.5 px: 17%, 2 px: 16%, each blur also losing real edges).
EDGE_BLUR_SIGMA = 1.0


@dataclass(frozen=True)
class DMVRSettings:
    """Settings of one video refinement. Learning rates are the paper's (section 3.6) per Adam
    step, except translation: the paper's 0.0047 has no unit, and in MANO's metres it would be
    4.7 mm per step, far beyond the errors corrected; handlib uses 0.47 mm (4.7e-4 m)."""

    schedule: tuple[Stage, ...] = DMVR_SCHEDULE
    lr_texture: float = 0.014
    lr_shape: float = 0.003
    lr_articulation: float = 0.0087
    lr_rotation: float = 0.0015
    lr_translation: float = 4.7e-4
    lr_colour: float = 0.001
    lr_environment: float = 0.1
    data_weight: float = 1.0
    prior_weight: float = 1.0
    edge_weight: float = 1.0
    edges: bool = True
    temporal: bool = True
    lighting: bool = True
    # "grey": the light's mean (the SH band-0 term) stays white at 1 and its other coefficients are
    # one value for R, G and B, so the hand's colour and overall brightness live in the albedo (and
    # the cameras' colour transforms) only; "free": all bands^2 x RGB coefficients move (the paper),
    # which lets colour and scale trade between light and albedo (see the book's Differences page).
    light_gauge: str = "grey"
    colour_transforms: bool = True
    # "demodulated": after the optimisation, each hand's albedo is estimated again in closed form at
    # the refined geometry, light and colour transforms: the images divided by a render of the hand
    # with a white albedo at ``shading_spp`` samples (least squares per texel over frames and
    # cameras), where the optimised texture is Adam's estimate from 4-spp gradients; "optimised":
    # the optimised texture itself (the paper). See the book's Differences page.
    albedo: str = "demodulated"
    # "consistent": after the optimisation (before the closed-form albedo), the light is estimated
    # again at the refined geometry and colour transforms: the one under which each texel's
    # closed-form albedo explains its samples over all frames best (handlib.methods.light, variable
    # projection; band 0 held, ``light_gauge`` kept); "optimised": the optimiser's light (the paper).
    # Needs albedo="demodulated" (the albedo must be estimated again under the new light).
    light_estimate: str = "consistent"
    shading_spp: int = 256
    # The closed-form albedo's regulariser (a departure; 0 turns it off): each texel is pulled toward
    # its neighbours on the surface with this weight against its evidence (the summed weight of its
    # samples over the median texel's), so noise in thinly seen texels is smoothed and well-seen
    # texels keep their detail (handlib.rendering.backproject.harmonic_fill). Chosen on three
    # development videos no notebook uses (benchmarks/dmvr_albedo.py --runs closed, closest hand,
    # true light): the albedo's PSNR on the texels seen for 0 / 0.1 / 0.3 / 1, realistic benchmark
    # 29.72 / 30.43 / 30.57 / 30.53, 30.75 / 31.28 / 31.42 / 31.30, 27.84 / 28.08 / 28.23 / 28.39 dB;
    # ideal 34.12 / 35.02 / 34.99 / 34.40, 33.92 / 34.67 / 34.69 / 34.10, 28.68 / 29.26 / 29.59 / 29.85.
    # It solves one sparse system over all the hand's texels: ~8 s for a 1024 atlas on 2 cores.
    albedo_smoothing: float = 0.3
    texture_size: int = 1024
    lod_levels: int = 8
    sh_bands: int = 2  # 2 bands x RGB = the paper's 12 coefficients
    spp: int = 4
    silhouette_spp: int = 1
    layout: Layout = "shared"  # the renderer's scenes: see handlib.rendering.scene
    backdrop: Backdrop = "traced"  # the background colour in the ray tracer, or composited
    # What the renders show behind the hand (a departure: the paper does not say): "plate", each
    # camera's view without the hand estimated from the video (handlib.methods.observations.
    # background_plates), or "colour", its median colour away from the hand. Against a flat colour,
    # a cluttered backdrop pulls the silhouette toward whatever looks like skin: see the book's
    # Differences page.
    background: str = "plate"
    plate_margin: float = PLATE_MARGIN  # the plate's hole around the start's hand, over the image's larger side
    seed: int = 0
    divergence_factor: float = 10.0
    # Two hands (refine_videos): weight of the interpenetration term E3 (mean squared penetration
    # depth in mm^2 over both hands' vertices) in each frame's energy. DMVR's data term is an image
    # norm, not SMVR's per-pixel mean, so the weight is its own. Chosen on the development seed of the
    # synthetic interaction videos (benchmarks/two_hands.py --video 3 --cameras 3 --sweep): the smallest
    # of 0, 1, 10, 100 that kept the deepest penetration within 1 mm (clasp: 3.9 / 2.7 / 0.0 / 0.0 mm).
    penetration_weight: float = 10.0

    def __post_init__(self) -> None:
        lod.level_sizes(self.texture_size, self.lod_levels)  # ValueError when they do not fit
        if self.light_gauge not in ("grey", "free"):
            raise ValueError(f"light_gauge must be 'grey' or 'free', got {self.light_gauge!r}.")
        if self.background not in ("plate", "colour"):
            raise ValueError(f"background must be 'plate' or 'colour', got {self.background!r}.")
        if not 0 <= self.plate_margin < 0.5:
            raise ValueError(
                f"plate_margin is a fraction of the image's larger side in [0, 0.5), got {self.plate_margin!r}."
            )
        if self.albedo not in ("demodulated", "optimised"):
            raise ValueError(f"albedo must be 'demodulated' or 'optimised', got {self.albedo!r}.")
        if self.light_estimate not in ("consistent", "optimised"):
            raise ValueError(f"light_estimate must be 'consistent' or 'optimised', got {self.light_estimate!r}.")
        if self.light_estimate == "consistent" and self.albedo != "demodulated":
            raise ValueError(
                "light_estimate='consistent' needs albedo='demodulated' (the albedo is estimated again under the "
                "new light); with albedo='optimised' set light_estimate='optimised'."
            )
        if not self.albedo_smoothing >= 0:
            raise ValueError(f"albedo_smoothing must be 0 (off) or more, got {self.albedo_smoothing!r}.")
        for stage in self.schedule:
            unknown = set(stage.optimise) - set(DMVR_GROUPS)
            if unknown or stage.iterations < 0:
                raise ValueError(f"Bad schedule stage {stage}: optimise a subset of {DMVR_GROUPS}.")


@dataclass
class DMVRResult:
    params: list[HandParams]  # refined, per frame (best state)
    texture: torch.Tensor  # (S, S, 3) linear albedo
    light: torch.Tensor  # (bands^2, 3) SH coefficients
    colour_transforms: torch.Tensor  # (C, 3, 4)
    history: list[dict] = field(repr=False)
    diverged: bool
    best_iteration: int
    seconds: float
    seen: np.ndarray | None = field(default=None, repr=False)  # (S, S) texels some camera saw in some frame
    # the texture the optimiser left (with albedo="optimised" the same as ``texture``)
    optimised_texture: torch.Tensor | None = field(default=None, repr=False)
    # per camera, the (H, W, 3) linear view without the hand the renders were shown over
    # (background="plate"; None with "colour"): draw a re-render over it with :func:`over_plate`
    plates: list[torch.Tensor] | None = field(default=None, repr=False)
    # the light the optimiser left (with light_estimate="optimised" the same as ``light``)
    optimised_light: torch.Tensor | None = field(default=None, repr=False)
    # the texture as the optimiser rendered it at the best state: its levels composed, clamped to
    # [0, 1], no texel filled (``optimised_texture`` fills those no camera saw at the start)
    rendered_texture: torch.Tensor | None = field(default=None, repr=False)


def edge_map(image: np.ndarray) -> np.ndarray:
    """Canny edges of an (H, W, 3) image in [0, 1], blurred by ``EDGE_BLUR_SIGMA`` px first,
    dilated by ``EDGE_DILATION`` px; bool (H, W)."""
    grey = cv2.cvtColor((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(grey, (0, 0), EDGE_BLUR_SIGMA), CANNY_LOW, CANNY_HIGH)
    size = 2 * EDGE_DILATION + 1
    return cv2.dilate(edges, np.ones((size, size), np.uint8)) > 0


def over_plate(image: torch.Tensor, alpha: torch.Tensor, transform: torch.Tensor, plate: torch.Tensor) -> torch.Tensor:
    """The camera's view, linear: its colour ``transform`` [A | b] applied to the hand's (H, W, 3)
    render over black (premultiplied by its coverage ``alpha`` (H, W)), over the ``plate``
    (the camera's view without the hand, which the transform leaves as it is)."""
    a = alpha[..., None]
    return image @ transform[:, :3].T + a * transform[:, 3] + (1.0 - a) * plate


def render_settings(settings: DMVRSettings, backdrop: Backdrop | None = None) -> RenderSettings:
    """The renderer's settings DMVR's energy is computed with: radiance, the run's samples, layout and
    seed; ``backdrop`` the run's unless given."""
    return RenderSettings(
        mode="radiance",
        spp=settings.spp,
        silhouette_spp=settings.silhouette_spp,
        layout=settings.layout,
        backdrop=settings.backdrop if backdrop is None else backdrop,
        seed=settings.seed,
    )


def shown_view(
    image: torch.Tensor, alpha: torch.Tensor, transform: torch.Tensor, plate: torch.Tensor | None
) -> torch.Tensor:
    """What DMVR compares with a camera's image, sRGB-encoded: the hand's linear render with the
    camera's colour ``transform``, over its ``plate`` (:func:`over_plate`), or with the background
    colour already in the render when ``plate`` is None."""
    if plate is None:
        return srgb_encode(apply_colour_transform(image, transform))
    return srgb_encode(over_plate(image, alpha, transform, plate))


def image_terms(
    shown: torch.Tensor, observed: torch.Tensor, observed_edges: np.ndarray | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3's two norms for one camera: the data term ``|| shown - observed ||`` over all pixels and
    channels, and the edge term, the same over the pixels where exactly one of the image's edges
    (``observed_edges``, :func:`edge_map`) and the render's lies (0 when ``observed_edges`` is None)."""
    difference = shown - observed
    data = torch.linalg.vector_norm(difference)
    if observed_edges is None:
        return data, torch.zeros(())
    disagree = torch.as_tensor(observed_edges ^ edge_map(shown.detach().numpy()))
    return data, torch.linalg.vector_norm(difference * disagree[..., None])


def frame_terms(
    rendered: Rendered,
    transforms: torch.Tensor,
    plates: Sequence[torch.Tensor] | None,
    observed: Sequence[torch.Tensor],
    observed_edges: Sequence[np.ndarray] | None,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Eq. 3's data and edge norms of one frame, summed over its cameras: the ``rendered`` hand as
    each camera shows it (:func:`shown_view`, with its colour transform and plate) against its
    ``observed`` image; no edge term when ``observed_edges`` is None. Also what each camera was
    shown (detached)."""
    data = edge = torch.zeros(())
    shown = []
    for c, image in enumerate(rendered.images):
        encoded = shown_view(image, rendered.alphas[c], transforms[c], None if plates is None else plates[c])
        image_data, image_edge = image_terms(
            encoded, observed[c], None if observed_edges is None else observed_edges[c]
        )
        data, edge = data + image_data, edge + image_edge
        shown.append(encoded.detach())
    return data, edge, shown


@dataclass(frozen=True)
class VideoHand:
    """One hand of a video as :func:`refine_videos` takes it: its model (right or left), its
    estimate per frame (batch 1 each) and optionally its truth per frame (adds errors to the history)."""

    model: HandModel
    initial: Sequence[HandParams]
    truth: Sequence[HandParams | metrics.Truth] | None = None


def refine_sequence(
    model: HandModel,
    cameras: Sequence[Camera],
    images: Sequence[Sequence[np.ndarray]],
    initial: Sequence[HandParams],
    times: Sequence[int],
    settings: DMVRSettings = DMVRSettings(),
    truth: Sequence[HandParams | metrics.Truth] | None = None,
    progress: bool = False,
    watch: Callable[[dict, list[HandParams]], bool | None] | None = None,
) -> DMVRResult:
    """Refine a video of one hand: ``images[t][c]`` (uint8 or float (H, W, 3)) of frame t in camera
    c, ``initial[t]`` its MANO estimate (batch 1), ``times[t]`` its frame number. ``truth`` adds
    eps_v / eps_j (mean over frames) to the history."""
    looked_at = None if watch is None else (lambda record, params: watch(record, params[0]))
    hand = VideoHand(model, initial, truth)
    return refine_videos([hand], cameras, images, times, settings, progress, looked_at)[0]


def refine_videos(
    hands: Sequence[VideoHand],
    cameras: Sequence[Camera],
    images: Sequence[Sequence[np.ndarray]],
    times: Sequence[int],
    settings: DMVRSettings = DMVRSettings(),
    progress: bool = False,
    watch: Callable[[dict, list[list[HandParams]]], bool | None] | None = None,
) -> list[DMVRResult]:
    """Refine one or two hands of a video together (``images[t][c]``: frame t in camera c): one
    light and one colour transform per camera shared, each hand its own shape, per-frame pose,
    albedo and temporal prior; with two hands both are in one scene and the interpenetration term
    ``penetration_weight * E3`` joins each frame's energy. One result per hand, in order (they
    share the history, light and transforms). Per-hand errors are in the history as ``eps_v_<k>``,
    ``eps_j_<k>`` (means over frames); ``eps_v`` / ``eps_j`` are their means; with two hands
    ``penetration_mm`` is the deepest penetration over the frames."""
    start = time.perf_counter()
    torch.manual_seed(settings.seed)
    count = len(images)
    if not 1 <= len(hands) <= 2:
        raise ValueError(f"refine_videos takes one or two hands, got {len(hands)}.")
    if count == 0 or len(times) != count or any(len(hand.initial) != count for hand in hands):
        raise ValueError(
            f"Need one image set, initial estimate and frame number per frame; got {len(images)}, "
            f"{[len(hand.initial) for hand in hands]} and {len(times)}."
        )
    observed = [observed_images(frame_images, cameras, t) for t, frame_images in enumerate(images)]
    surfaces = [HandSurface.of(hand.model) for hand in hands]
    surface = surfaces[0] if len(hands) == 1 else HandSurface.together(surfaces)
    renderer = Renderer(cameras, surface, render_settings(settings))
    image_edges = [[edge_map(o.numpy()) for o in row] for row in observed] if settings.edges else None

    # Start: the annotations, their mean shape, the observations back-projected (linearised) as
    # albedo under a uniform white light (a diffuse surface under radiance 1 shows its albedo).
    betas0 = [torch.cat([p.betas for p in hand.initial]).mean(0, keepdim=True) for hand in hands]
    with torch.no_grad():
        starts = [  # starts[t][k]: hand k's vertices in frame t
            [
                hand.model(HandParams(p.global_orient, p.hand_pose, b, p.transl)).vertices[0]
                for hand, b, p in zip(hands, betas0, (h.initial[t] for h in hands))
            ]
            for t in range(count)
        ]
        coverages = [
            renderer.render(torch.cat(frame), torch.full((4, 4, 3), 0.5), lighting.uniform(1.0, settings.sh_bands))
            for frame in (starts if settings.background == "plate" else starts[:1])
        ]
    coverage = coverages[0]

    # Per texel, the mean over the frames that saw it; texels no frame saw are filled from the
    # nearest seen ones on the surface (first frame's pose), at the start and again at the end.
    # With two hands, each hand's albedo is back-projected with the other in the way of the rays.
    encoded_backgrounds = background_colours(observed[0], coverage.alphas)
    plates = None  # linear, shown behind the transformed hand (not themselves transformed)
    if settings.background == "plate":
        plates = [
            srgb_decode(plate)
            for plate in background_plates(observed, [c.alphas for c in coverages], settings.plate_margin)
        ]
        backgrounds = None  # the hand over black, with its coverage's gradients (composite)
        renderer = Renderer(cameras, surface, replace(renderer.settings, backdrop="composite"))
    else:
        backgrounds = [srgb_decode(c) for c in encoded_backgrounds]
    visibilities, levels = [], []
    scenes = [occluders(surface, frame) for frame in starts]  # per frame, shared by the hands' back-projections
    for k, hand_surface in enumerate(surfaces):
        baked = [
            backproject_texture(
                hand_surface,
                frame[k],
                cameras,
                [o.numpy() for o in row],
                settings.texture_size,
                encoded_backgrounds,
                scene,
                fill=False,  # filled once, over all frames
            )
            for frame, row, scene in zip(starts, observed, scenes)
        ]
        seen = np.stack([b.seen for b in baked])
        summed = sum(b.texture.double() * torch.as_tensor(s[..., None]) for b, s in zip(baked, seen))
        visibility = replace(baked[0], seen=seen.any(0))
        start_texture = visibility.fill(summed / torch.as_tensor(np.maximum(seen.sum(0), 1)[..., None]))
        visibilities.append(visibility)
        levels.append(
            [
                level.clone().requires_grad_(True)
                for level in lod.decompose(srgb_decode(start_texture), settings.lod_levels)
            ]
        )

    # The unknowns: the light, colour transforms; per hand texture levels, per-frame pose corrections, one shape.
    white = lighting.uniform(1.0, settings.sh_bands)
    if settings.light_gauge == "grey":  # the variables: one value per SH coefficient beyond band 0
        light_variables = torch.zeros(len(white) - 1, requires_grad=settings.lighting)
    else:
        light_variables = white.clone().requires_grad_(settings.lighting)

    def light_of(variables: torch.Tensor) -> torch.Tensor:
        """The (bands^2, 3) SH coefficients the light variables stand for (see ``light_gauge``)."""
        if settings.light_gauge == "free":
            return variables
        return white + torch.cat([variables.new_zeros(1), variables])[:, None].expand(-1, 3)

    transforms = identity_colour_transforms(len(cameras), settings.colour_transforms)
    motion = [  # per hand: rotation, translation, articulation correctives per frame; its shape
        (
            torch.zeros(count, 3, requires_grad=True),
            torch.zeros(count, 3, requires_grad=True),
            torch.zeros(count, 45, requires_grad=True),
            b.clone().requires_grad_(True),
        )
        for b in betas0
    ]
    bases = [
        tuple(torch.cat([getattr(p, name) for p in hand.initial]) for name in ("global_orient", "hand_pose", "transl"))
        for hand in hands
    ]
    # The prior's time axis is the sample index: InterHand2.6M's frame numbers are irregular and
    # carry no timing; the filter's range kernel keeps real (large) discontinuities.
    samples = torch.arange(count, dtype=torch.float64)

    groups = {
        "environment": [(light_variables, settings.lr_environment)] if settings.lighting else [],
        # per level, so that all levels together move a texel by at most lr_texture per step
        "texture": [(level, settings.lr_texture / len(hand_levels)) for hand_levels in levels for level in hand_levels],
        "shape": [(m[3], settings.lr_shape) for m in motion],
        "pose": [entry for m in motion for entry in ((m[0], settings.lr_rotation), (m[1], settings.lr_translation))],
        "articulation": [(m[2], settings.lr_articulation) for m in motion],
        "colour": [(transforms, settings.lr_colour)] if settings.colour_transforms else [],
    }
    optimisers = {
        name: torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in entries])
        for name, entries in groups.items()
        if entries
    }
    truths = [None if hand.truth is None else [metrics.as_truth(hand.model, t) for t in hand.truth] for hand in hands]

    def frame_params(k: int, t: int, state=None) -> HandParams:
        rotation, translation, articulation, betas = motion[k] if state is None else state
        orient, pose, transl = bases[k]
        return HandParams(
            orient[t : t + 1] + rotation[t : t + 1],
            pose[t : t + 1] + articulation[t : t + 1],
            betas,
            transl[t : t + 1] + translation[t : t + 1],
        )

    def atlas(hand_levels: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
        textures = [lod.compose(h) for h in hand_levels]
        return textures[0] if len(textures) == 1 else side_by_side(textures)

    def evaluate(stage: Stage) -> dict:
        """E = data + edge (+ E3) over frames and cameras, plus the temporal prior; gradients
        accumulated frame by frame (one frame's graph at a time), the textures' through their levels
        at the end."""
        texture = atlas(levels)
        texture_leaf = texture.detach().clamp(0.0, 1.0).requires_grad_(True)
        record = {"data": 0.0, "edge": 0.0, "E3": 0.0}
        errors, camera_errors, deepest = [], [], 0.0
        hand_errors = [[] for _ in hands]
        for t in range(count):
            outputs = [hand.model(frame_params(k, t)) for k, hand in enumerate(hands)]
            vertices = [output.vertices[0] for output in outputs]
            rendered = renderer.render(
                torch.cat(vertices), texture_leaf, light_of(light_variables), backgrounds=backgrounds
            )
            data, edge, shown = frame_terms(
                rendered, transforms, plates, observed[t], image_edges[t] if settings.edges else None
            )
            frame_loss = settings.data_weight * (data + settings.edge_weight * edge)
            if len(hands) == 2:
                e3, depth = penetration_energy(surfaces, vertices)
                frame_loss = frame_loss + settings.penetration_weight * e3
                record["E3"] += float(e3.detach())
                deepest = max(deepest, depth)
            frame_loss.backward()
            record["data"] += float(data.detach())
            record["edge"] += float(edge.detach())
            errors.append(metrics.backprojection_error(observed[t], shown, rendered.alphas))
            camera_errors.append(metrics.backprojection_errors(observed[t], shown, rendered.alphas))
            for k, (output, truth) in enumerate(zip(outputs, truths)):
                if truth is not None:
                    with torch.no_grad():
                        hand_errors[k].append(metrics.errors_against(output, truth[t]))
        prior = torch.zeros(())
        if settings.temporal and count > 1:
            for k in range(len(hands)):
                prior = prior + temporal_prior((bases[k][1] + motion[k][2]).double(), samples).float()
            (settings.prior_weight * prior).backward()
        texture.backward(texture_leaf.grad)
        value = (
            settings.data_weight * (record["data"] + settings.edge_weight * record["edge"])
            + settings.prior_weight * float(prior.detach())
            + (settings.penetration_weight * record["E3"] if len(hands) == 2 else 0.0)
        )
        record.update(
            {
                "E": value,
                "prior": float(prior.detach()),
                "backprojection": float(np.mean(errors)),
                "backprojection_frames": [float(e) for e in errors],
                "backprojection_cameras": camera_errors,
            }
        )
        if len(hands) == 2:
            record["penetration_mm"] = deepest
        else:
            del record["E3"]
        if all(hand_errors):
            per_hand = [np.mean(e, axis=0) for e in hand_errors]  # (eps_v, eps_j) per hand
            record["eps_v"], record["eps_j"] = (float(x) for x in np.mean(per_hand, axis=0))
            if len(hands) > 1:
                for k, (eps_v, eps_j) in enumerate(per_hand):
                    record[f"eps_v_{k}"], record[f"eps_j_{k}"] = float(eps_v), float(eps_j)
        return record

    def snapshot():
        return (
            [tuple(v.detach().clone() for v in m) for m in motion],
            [[level.detach().clone() for level in hand_levels] for hand_levels in levels],
            light_variables.detach().clone(),
            transforms.detach().clone(),
        )

    def freeze_levels(stage: Stage) -> None:
        """Levels finer than the stage's keep their values (and still add to the texture)."""
        for hand_levels in levels:
            trainable = len(hand_levels) if stage.levels is None else min(stage.levels, len(hand_levels))
            for level in hand_levels[trainable:]:
                level.grad = None

    def looked_at(record: dict) -> bool | None:
        return watch(record, [[frame_params(k, t).detached() for t in range(count)] for k in range(len(hands))])

    outcome = optimise(
        settings,
        optimisers,
        evaluate,
        snapshot,
        before_step=freeze_levels,
        desc="dmvr",
        progress=progress,
        watch=looked_at if watch else None,
    )
    best_motion, best_levels, best_light, best_transforms = outcome.best_state
    params = [[frame_params(k, t, best_motion[k]) for t in range(count)] for k in range(len(hands))]
    rendered_textures = [lod.compose(h).clamp(0.0, 1.0).detach() for h in best_levels]
    textures = [visibility.fill(texture) for visibility, texture in zip(visibilities, rendered_textures)]
    seens = [visibility.seen for visibility in visibilities]
    optimised, optimised_light = textures, light_of(best_light).detach()
    light = optimised_light
    if settings.albedo == "demodulated":
        with torch.no_grad():
            vertices = [[hand.model(p[t]).vertices[0] for hand, p in zip(hands, params)] for t in range(count)]
        if settings.lighting and settings.light_estimate == "consistent":
            sums = shading_sums(
                surfaces,
                cameras,
                observed,
                vertices,
                best_transforms,
                encoded_backgrounds,
                settings.sh_bands,
                settings.shading_spp,
                settings.layout,
                seed=settings.seed,
            )
            light = consistent_light(sums, optimised_light, settings.light_gauge)
        bakes = demodulated_albedo(
            surfaces,
            cameras,
            observed,
            vertices,
            light,
            best_transforms,
            encoded_backgrounds,
            settings.texture_size,
            settings.shading_spp,
            settings.layout,
            settings.albedo_smoothing,
        )
        textures, seens = [b.texture.clamp(0.0, 1.0) for b in bakes], [b.seen for b in bakes]
    seconds = time.perf_counter() - start
    return [
        DMVRResult(
            params[k],
            textures[k],
            light,
            best_transforms,
            outcome.history,
            outcome.diverged,
            outcome.best_iteration,
            seconds,
            seens[k],
            optimised[k],
            plates,
            optimised_light,
            rendered_textures[k],
        )
        for k in range(len(hands))
    ]


def demodulated_albedo(
    surfaces: Sequence[HandSurface],
    cameras: Sequence[Camera],
    observed: Sequence[Sequence[torch.Tensor]],
    vertices: Sequence[Sequence[torch.Tensor]],
    light: torch.Tensor,
    transforms: torch.Tensor,
    backgrounds: Sequence[torch.Tensor],
    size: int,
    spp: int = 256,
    layout: Layout = "shared",
    smoothing: float = 0.0,
) -> list[Baked]:
    """Each hand's (size, size, 3) linear albedo in closed form, given the rest of a DMVR
    estimate: ``observed[t][c]`` (sRGB-encoded, [0, 1]) of frame t in camera c, ``vertices[t][k]``
    hand k's model vertices, the SH ``light``, the (C, 3, 4) colour ``transforms`` and each
    camera's (encoded) background colour. Every frame's images are decoded, each camera's transform
    is undone, and they are divided by the shading (the hands rendered with a white albedo under the
    light at ``spp`` samples, shadows included): per texel, the least-squares albedo over all frames
    and cameras that saw it (:func:`backproject_texture`); texels none saw are filled, and with
    ``smoothing`` > 0 the seen ones smoothed by their evidence (see ``DMVRSettings.albedo_smoothing``)."""
    together, renderer = shading_renderer(surfaces, cameras, spp, layout)
    white = torch.ones(size, size * len(surfaces), 3)
    sums = [np.zeros((size, size, 3)) for _ in surfaces]
    weights = [np.zeros((size, size, 3)) for _ in surfaces]
    first = [None] * len(surfaces)
    for row, frame in zip(observed, vertices):
        with torch.no_grad():
            rendered = renderer.render(torch.cat(frame), white, light)
        shading = [image.double().numpy() for image in rendered.images]
        inputs = frame_inputs(together, frame, row, transforms, rendered.alphas)
        for k, hand_surface in enumerate(surfaces):
            baked = backproject_texture(
                hand_surface,
                frame[k],
                cameras,
                inputs.encoded,
                size,
                backgrounds,
                inputs.scene,
                shading=shading,
                values=inputs.linear,
                masks=inputs.inside,
                hand_like=True,
                fill=False,
            )
            evidence = baked.weights * baked.seen[..., None]  # a texel this frame did not estimate adds nothing
            sums[k] += baked.texture.numpy() * evidence
            weights[k] += evidence
            first[k] = first[k] or baked
    bakes = []
    for total, weight, baked in zip(sums, weights, first):
        seen = weight.min(-1) > SHADOW_WEIGHT
        albedo = np.where(seen[..., None], total / np.maximum(weight, 1e-12), 0.5)
        combined = replace(baked, seen=seen, weights=weight)
        bakes.append(replace(combined, texture=combined.fill(torch.as_tensor(albedo), smoothing)))
    return bakes


def data_energies(
    model: HandModel,
    cameras: Sequence[Camera],
    images: Sequence[Sequence[np.ndarray]],
    params: Sequence[HandParams],
    result: DMVRResult,
    settings: DMVRSettings = DMVRSettings(),
    seeds: int = 4,
) -> list[float]:
    """Each frame's image energy (eq. 3, ``data_weight * (data + edge_weight * edge)``; no temporal
    prior) with the hand at ``params[t]``, under the appearance a one-hand DMVR run of this video left
    in ``result``: the texture as its optimiser rendered it (``rendered_texture``), the light it
    left, its colour transforms and plates. ``settings`` are the run's (samples per pixel, edges,
    weights); the mean over ``seeds`` Monte Carlo seeds, the same ones at every call, so that two
    hands are compared on the same samples.

    It asks whether the energy DMVR minimised prefers its result to another hand (the truth, say)
    once the appearance is what the run fitted: where it does, the optimiser did not stop short, and
    what keeps the hand from the truth is the energy with that appearance."""
    if result.plates is None or result.rendered_texture is None:
        raise ValueError(
            "data_energies needs a DMVR result run with background='plate' (it reads the plates and the "
            "texture the optimiser rendered)."
        )
    if len(params) != len(images):
        raise ValueError(f"Need one hand per frame: {len(params)} for {len(images)} frames.")
    renderer = Renderer(cameras, HandSurface.of(model), render_settings(settings, backdrop="composite"))
    energies = []
    for t, (row, hand) in enumerate(zip(images, params)):
        observed = observed_images(row, cameras, t)
        edges = [edge_map(o.numpy()) for o in observed] if settings.edges else None
        total = 0.0
        with torch.no_grad():
            vertices = model(hand).vertices[0]
            for seed in range(seeds):
                rendered = renderer.render(vertices, result.rendered_texture, result.optimised_light, seed=seed)
                data, edge, _ = frame_terms(rendered, result.colour_transforms, result.plates, observed, edges)
                total += settings.data_weight * float(data + settings.edge_weight * edge)
        energies.append(total / seeds)
    return energies
