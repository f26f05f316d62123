"""SMVR: per-frame multi-view refinement of a MANO hand (BMVC 2021, section 3).

Unknowns: corrections delta-h to the initial MANO estimate h (global rotation 3, pose 45,
shape 10, translation 3) and a UV colour map c; optionally one linear colour transform per
camera (photo-consistency up to a colour transform). Energy::

    E(dh, c) = E1(dh, c) + lambda E2(dh)
    E1 = sum over cameras of the mean over pixels of f1(O_i, T_i(R(G_v(h + dh), c, C_i)))
    E2 = mean over valid joints and coordinates of smooth_l1(J, G_J(h + dh); gamma = 5 mm)

with f1 MAE or the occlusion-aware error (eq. 4), R the ``reflectance`` render (hand over
each camera's background estimate) and T_i the camera's colour transform. Images are
compared as the dataset stores them (sRGB-encoded intensities in [0, 1]); the colour map
lives in the same space, so the render is a plain colour transfer.

A colour map baked from a misplaced mesh holds the misplacement (background colours on
texels near the silhouette), and the geometry then drifts to fit it: with ``rebake_colour``
the map is back-projected again from the refined geometry after every geometry stage. The map
returned is one more such bake at the best state, each camera's colour transform undone, from
pixels inside the refined outline only (``OUTLINE_PX``), so no backdrop reaches its borders.

Two hands (:func:`refine_hands`, beyond the paper): both hands of a frame are rendered in one
scene, so each camera sees them hide each other, and refined together (each its own corrections,
colour map and joint term; the cameras' colour transforms shared), with an interpenetration term
``mu E3``: the mean over both closed hands' vertices of the squared depth inside the other hand.
Each hand's colour map is back-projected with the other hand in the way of the rays.

Staying near the initial estimate (the paper's Figure 2): the search is a few hundred
small Adam steps from dh = 0, the joint term ties the hand to the annotated joints, and a
state whose loss is not finite or exceeds ``divergence_factor`` times the first one stops
the run, which then returns the best state seen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from handlib.geometry.cameras import Camera
from handlib.geometry.surface import HandSurface, side_by_side
from handlib.methods import losses, metrics
from handlib.methods.loop import optimise
from handlib.methods.observations import background_colours, observed_images
from handlib.methods.schedule import SMVR_SCHEDULE, Stage
from handlib.methods.together import occluders, penetration_energy
from handlib.model.hand import HandModel, HandParams
from handlib.rendering.backproject import backproject_texture, inside_outline
from handlib.rendering.colour import apply_colour_transform, identity_colour_transforms, undo_colour_transform
from handlib.rendering.renderer import Generator, Renderer, RenderSettings
from handlib.rendering.scene import Backdrop, Layout

GEOMETRY = ("global_orient", "hand_pose", "betas", "transl")


@dataclass(frozen=True)
class SMVRSettings:
    """Settings of one refinement. Learning rates are per Adam step, in the parameters' units
    (radians, shape units, metres, colour-map intensities)."""

    loss: str = "occlusion_aware"  # or "mae"
    joint_weight: float = 1e-4  # lambda; E1 is a per-pixel mean, E2 a per-coordinate mean in mm
    schedule: tuple[Stage, ...] = SMVR_SCHEDULE
    lr_global_orient: float = 2e-3
    lr_hand_pose: float = 5e-3
    lr_betas: float = 1e-2
    lr_transl: float = 2e-4
    lr_colour: float = 1e-2
    lr_colour_transform: float = 1e-3
    colour_transforms: bool = True
    texture_size: int = 512
    generator: Generator = "raytrace"
    spp: int = 4
    silhouette_spp: int = 1
    layout: Layout = "shared"  # the renderer's scenes: see handlib.rendering.scene
    backdrop: Backdrop = "traced"  # the background colour in the ray tracer, or composited
    seed: int = 0
    divergence_factor: float = 10.0
    # Re-back-project the colour map from the current geometry after each geometry stage (a handlib
    # addition: the paper updates c by gradient only). Dev case, half schedule: eps_v 2.76 -> 2.50 mm.
    rebake_colour: bool = True
    # Two hands (refine_hands): weight of the interpenetration term E3 (mean squared penetration depth
    # in mm^2 over both hands' vertices, see handlib.geometry.penetration). Chosen on the development
    # seed of the synthetic interactions (benchmarks/two_hands.py --sweep): the smallest of 0, 1e-3,
    # 1e-2 that kept the deepest penetration within 1 mm with 2 cameras (0.83 / 0.45 mm; 3.7 / 7.8 mm
    # without), at no measured cost in eps_v with 6.
    penetration_weight: float = 1e-2

    def __post_init__(self) -> None:
        if self.loss not in losses.PHOTOMETRIC:
            raise ValueError(f"loss must be one of {sorted(losses.PHOTOMETRIC)}, got {self.loss!r}.")
        for stage in self.schedule:
            unknown = set(stage.optimise) - {"geometry", "colour"}
            if unknown or stage.iterations < 0:
                raise ValueError(f"Bad schedule stage {stage}: optimise 'geometry' and/or 'colour'.")


@dataclass
class SMVRResult:
    params: HandParams  # refined (best state)
    texture: torch.Tensor  # (S, S, 3) colour map
    colour_transforms: torch.Tensor  # (C, 3, 4)
    history: list[dict] = field(repr=False)
    diverged: bool
    best_iteration: int
    seconds: float
    seen: np.ndarray | None = field(default=None, repr=False)  # (S, S) texels seen inside the refined outline


@dataclass(frozen=True)
class HandInput:
    """One hand of a frame as :func:`refine_hands` takes it: its model (right or left), the estimate
    to refine (batch 1), the annotated joints ((21, 3) mm, InterHand2.6M order; None drops the joint
    term) with their validity, and optionally the truth (adds its errors to the history)."""

    model: HandModel
    initial: HandParams
    target_joints: torch.Tensor | None = None
    joint_valid: torch.Tensor | None = None
    truth: HandParams | metrics.Truth | None = None


def refine_frame(
    model: HandModel,
    cameras: Sequence[Camera],
    images: Sequence[np.ndarray],
    initial: HandParams,
    target_joints: torch.Tensor | None = None,
    joint_valid: torch.Tensor | None = None,
    settings: SMVRSettings = SMVRSettings(),
    truth: HandParams | metrics.Truth | None = None,
    progress: bool = False,
    watch: Callable[[dict, HandParams], bool | None] | None = None,
) -> SMVRResult:
    """Refine ``initial`` (batch 1) against ``images`` (uint8 or float (H, W, 3) per camera).

    ``target_joints`` (21, 3) mm in InterHand2.6M order (the joint term is dropped without
    them); ``truth`` adds eps_v / eps_j to the history.
    """
    hand = HandInput(model, initial, target_joints, joint_valid, truth)
    looked_at = None if watch is None else (lambda record, params: watch(record, params[0]))
    return refine_hands([hand], cameras, images, settings, progress, looked_at)[0]


def refine_hands(
    hands: Sequence[HandInput],
    cameras: Sequence[Camera],
    images: Sequence[np.ndarray],
    settings: SMVRSettings = SMVRSettings(),
    progress: bool = False,
    watch: Callable[[dict, list[HandParams]], bool | None] | None = None,
) -> list[SMVRResult]:
    """Refine one or two hands of a frame together against ``images`` (uint8 or float (H, W, 3)
    per camera); one result per hand, in order (they share the run's history and colour
    transforms). Per-hand errors are in the history as ``eps_v_<k>``, ``eps_j_<k>``; ``eps_v`` and
    ``eps_j`` are their means; with two hands, ``penetration_mm`` is the deepest penetration."""
    if not 1 <= len(hands) <= 2:
        raise ValueError(f"refine_hands takes one or two hands, got {len(hands)}.")
    start = time.perf_counter()
    torch.manual_seed(settings.seed)
    surfaces = [HandSurface.of(hand.model) for hand in hands]
    surface = surfaces[0] if len(hands) == 1 else HandSurface.together(surfaces)
    observed = observed_images(images, cameras)
    renderer = Renderer(
        cameras,
        surface,
        RenderSettings(
            generator=settings.generator,
            spp=settings.spp,
            silhouette_spp=settings.silhouette_spp,
            layout=settings.layout,
            backdrop=settings.backdrop,
            seed=settings.seed,
        ),
    )
    observed_arrays = [o.numpy() for o in observed]

    def bake(vertices: list[torch.Tensor], backgrounds) -> list[torch.Tensor]:
        """Each hand's colour map back-projected, the other hand in the way of the rays."""
        scene = occluders(surface, vertices)
        return [
            backproject_texture(s, v, cameras, observed_arrays, settings.texture_size, backgrounds, scene).texture
            for s, v in zip(surfaces, vertices)
        ]

    with torch.no_grad():
        initial_vertices = [hand.model(hand.initial).vertices[0] for hand in hands]
        first = renderer.render(torch.cat(initial_vertices), torch.full((4, 4, 3), 0.5))
    backgrounds = background_colours(observed, first.alphas)
    textures0 = bake(initial_vertices, backgrounds)

    # The unknowns: corrections to each estimate, each hand's colour map, one colour transform per camera.
    deltas = [
        {name: torch.zeros_like(getattr(hand.initial, name), requires_grad=True) for name in GEOMETRY} for hand in hands
    ]
    colours = [texture.clone().requires_grad_(True) for texture in textures0]
    transforms = identity_colour_transforms(len(cameras), settings.colour_transforms)
    lr = {
        "global_orient": settings.lr_global_orient,
        "hand_pose": settings.lr_hand_pose,
        "betas": settings.lr_betas,
        "transl": settings.lr_transl,
    }
    optimisers = {
        "geometry": torch.optim.Adam([{"params": [d[n]], "lr": lr[n]} for d in deltas for n in GEOMETRY]),
        "colour": torch.optim.Adam(
            [{"params": colours, "lr": settings.lr_colour}]
            + ([{"params": [transforms], "lr": settings.lr_colour_transform}] if settings.colour_transforms else [])
        ),
    }
    photometric = losses.PHOTOMETRIC[settings.loss]
    targets = [joint_target(hand) for hand in hands]
    truths = [None if hand.truth is None else metrics.as_truth(hand.model, hand.truth) for hand in hands]

    def current() -> list[HandParams]:
        return [HandParams(*(getattr(h.initial, n) + d[n] for n in GEOMETRY)) for h, d in zip(hands, deltas)]

    def evaluate(stage: Stage) -> dict:
        """E = E1 + lambda E2 (+ mu E3), backpropagated; its terms and the frame's errors."""
        outputs = [hand.model(params) for hand, params in zip(hands, current())]
        vertices = [output.vertices[0] for output in outputs]
        texture = colours[0] if len(hands) == 1 else side_by_side(colours)
        rendered = renderer.render(torch.cat(vertices), texture.clamp(0.0, 1.0), backgrounds=backgrounds)
        images_out = [apply_colour_transform(image, t) for image, t in zip(rendered.images, transforms)]
        e1 = sum(photometric(o, r).mean() for o, r in zip(observed, images_out))
        e2 = torch.zeros(())
        for output, target in zip(outputs, targets):
            if target is not None:
                e2 = e2 + losses.smooth_l1(target[0][target[1]], output.joints21[0][target[1]]).mean()
        e3, deepest = torch.zeros(()), 0.0
        if len(hands) == 2:
            e3, deepest = penetration_energy(surfaces, vertices)
        energy = e1 + settings.joint_weight * e2 + settings.penetration_weight * e3
        energy.backward()
        record = {"E": float(energy.detach()), "E1": float(e1.detach()), "E2": float(e2.detach())}
        if len(hands) == 2:
            record["E3"], record["penetration_mm"] = float(e3.detach()), deepest
        with torch.no_grad():
            shown = [i.detach().clamp(0, 1) for i in images_out]
            record["backprojection"] = metrics.backprojection_error(observed, shown, rendered.alphas)
            record["backprojection_cameras"] = metrics.backprojection_errors(observed, shown, rendered.alphas)
            errors = [metrics.errors_against(o, t) for o, t in zip(outputs, truths) if t is not None]
            if len(errors) == len(hands):
                record["eps_v"], record["eps_j"] = (float(np.mean(e)) for e in zip(*errors))
                if len(hands) > 1:
                    for k, (eps_v, eps_j) in enumerate(errors):
                        record[f"eps_v_{k}"], record[f"eps_j_{k}"] = eps_v, eps_j
        return record

    def snapshot():
        return (
            [{n: d.detach().clone() for n, d in delta.items()} for delta in deltas],
            [c.detach().clone() for c in colours],
            transforms.detach().clone(),
        )

    def rebake(stage: Stage) -> None:
        """The colour maps back-projected again from the geometry a stage refined (``rebake_colour``)."""
        if settings.rebake_colour and "geometry" in stage.optimise:
            with torch.no_grad():
                baked = bake([hand.model(params).vertices[0] for hand, params in zip(hands, current())], backgrounds)
                for colour, texture in zip(colours, baked):
                    colour.copy_(texture)

    def looked_at(record: dict) -> bool | None:
        return watch(record, [params.detached() for params in current()])

    outcome = optimise(
        settings,
        optimisers,
        evaluate,
        snapshot,
        after_stage=rebake,
        desc="smvr",
        progress=progress,
        watch=looked_at if watch else None,
    )
    best_deltas, _, best_transforms = outcome.best_state  # the optimised maps give way to the last bake
    best = [
        HandParams(*(getattr(hand.initial, n).detach() + delta[n] for n in GEOMETRY))
        for hand, delta in zip(hands, best_deltas)
    ]
    # The colour maps are back-projected once more at the refined hands, each camera's colour
    # transform undone, from pixels inside the refined outline only: the optimiser pulls texels at
    # a misplaced outline toward the backdrop, and outline pixels mix hand and background.
    with torch.no_grad():
        vertices = [hand.model(params).vertices[0] for hand, params in zip(hands, best)]
        coverage = renderer.render(torch.cat(vertices), torch.full((4, 4, 3), 0.5)).alphas
        undone = [undo_colour_transform(o, t).numpy() for o, t in zip(observed, best_transforms)]
    inside = [inside_outline(alpha.numpy()) for alpha in coverage]
    scene = occluders(surface, vertices)
    bakes = [
        backproject_texture(
            s,
            v,
            cameras,
            observed_arrays,
            settings.texture_size,
            backgrounds,
            scene,
            values=undone,
            masks=inside,
            hand_like=True,
        )
        for s, v in zip(surfaces, vertices)
    ]
    seconds = time.perf_counter() - start
    return [
        SMVRResult(
            params,
            baked.texture.clamp(0.0, 1.0).float(),
            best_transforms,
            outcome.history,
            outcome.diverged,
            outcome.best_iteration,
            seconds,
            baked.seen,
        )
        for params, baked in zip(best, bakes)
    ]


def joint_target(hand: HandInput) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The hand's annotated joints (21, 3) and which are valid (21,), or None without annotation."""
    if hand.target_joints is None:
        return None
    target = torch.as_tensor(hand.target_joints, dtype=torch.float32).reshape(21, 3)
    valid = torch.ones(21, dtype=torch.bool) if hand.joint_valid is None else torch.as_tensor(hand.joint_valid).bool()
    return target, valid
