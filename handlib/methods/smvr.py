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
the map is back-projected again from the refined geometry after every geometry stage.

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
from handlib.geometry.surface import HandSurface
from handlib.methods import losses, metrics
from handlib.methods.loop import optimise
from handlib.methods.observations import background_colours, observed_images
from handlib.methods.schedule import SMVR_SCHEDULE, Stage
from handlib.model.hand import HandModel, HandParams
from handlib.rendering.backproject import backproject_texture
from handlib.rendering.colour import apply_colour_transform, identity_colour_transforms
from handlib.rendering.renderer import Generator, Renderer, RenderSettings
from handlib.rendering.scene import Layout

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
    seed: int = 0
    divergence_factor: float = 10.0
    # Re-back-project the colour map from the current geometry after each geometry stage (a handlib
    # addition: the paper updates c by gradient only). Dev case, half schedule: eps_v 2.76 -> 2.50 mm.
    rebake_colour: bool = True

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
    start = time.perf_counter()
    torch.manual_seed(settings.seed)
    surface = HandSurface.of(model)
    observed = observed_images(images, cameras)
    renderer = Renderer(
        cameras,
        surface,
        RenderSettings(
            generator=settings.generator,
            spp=settings.spp,
            silhouette_spp=settings.silhouette_spp,
            layout=settings.layout,
            seed=settings.seed,
        ),
    )
    with torch.no_grad():
        initial_out = model(initial)
        first = renderer.render(initial_out.vertices[0], torch.full((4, 4, 3), 0.5))
    backgrounds = background_colours(observed, first.alphas)
    observed_arrays = [o.numpy() for o in observed]
    texture0 = backproject_texture(
        surface, initial_out.vertices[0], cameras, observed_arrays, settings.texture_size, backgrounds
    ).texture

    # The unknowns: corrections to the estimate, the colour map, one colour transform per camera.
    delta = {name: torch.zeros_like(getattr(initial, name), requires_grad=True) for name in GEOMETRY}
    colour = texture0.clone().requires_grad_(True)
    transforms = identity_colour_transforms(len(cameras), settings.colour_transforms)
    lr = {
        "global_orient": settings.lr_global_orient,
        "hand_pose": settings.lr_hand_pose,
        "betas": settings.lr_betas,
        "transl": settings.lr_transl,
    }
    optimisers = {
        "geometry": torch.optim.Adam([{"params": [delta[n]], "lr": lr[n]} for n in GEOMETRY]),
        "colour": torch.optim.Adam(
            [{"params": [colour], "lr": settings.lr_colour}]
            + ([{"params": [transforms], "lr": settings.lr_colour_transform}] if settings.colour_transforms else [])
        ),
    }
    photometric = losses.PHOTOMETRIC[settings.loss]
    if target_joints is not None:
        target_joints = torch.as_tensor(target_joints, dtype=torch.float32).reshape(21, 3)
        valid = torch.ones(21, dtype=torch.bool) if joint_valid is None else torch.as_tensor(joint_valid).bool()
    truth_out = None if truth is None else metrics.as_truth(model, truth)

    def current() -> HandParams:
        return HandParams(*(getattr(initial, n) + delta[n] for n in GEOMETRY))

    def evaluate(stage: Stage) -> dict:
        """E = E1 + lambda E2, backpropagated; its terms and the frame's errors."""
        output = model(current())
        rendered = renderer.render(output.vertices[0], colour.clamp(0.0, 1.0), backgrounds=backgrounds)
        images_out = [apply_colour_transform(image, t) for image, t in zip(rendered.images, transforms)]
        e1 = sum(photometric(o, r).mean() for o, r in zip(observed, images_out))
        e2 = torch.zeros(())
        if target_joints is not None:
            e2 = losses.smooth_l1(target_joints[valid], output.joints21[0][valid]).mean()
        energy = e1 + settings.joint_weight * e2
        energy.backward()
        record = {"E": float(energy.detach()), "E1": float(e1.detach()), "E2": float(e2.detach())}
        with torch.no_grad():
            shown = [i.detach().clamp(0, 1) for i in images_out]
            record["backprojection"] = metrics.backprojection_error(observed, shown, rendered.alphas)
            record["backprojection_cameras"] = metrics.backprojection_errors(observed, shown, rendered.alphas)
            if truth_out is not None:
                record["eps_v"], record["eps_j"] = metrics.errors_against(output, truth_out)
        return record

    def snapshot():
        return {n: d.detach().clone() for n, d in delta.items()}, colour.detach().clone(), transforms.detach().clone()

    def rebake(stage: Stage) -> None:
        """The colour map back-projected again from the geometry a stage refined (``rebake_colour``)."""
        if settings.rebake_colour and "geometry" in stage.optimise:
            with torch.no_grad():
                baked = backproject_texture(
                    surface, model(current()).vertices[0], cameras, observed_arrays, settings.texture_size, backgrounds
                )
                colour.copy_(baked.texture)

    def looked_at(record: dict) -> bool | None:
        return watch(record, current().detached())

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
    best_delta, best_colour, best_transforms = outcome.best_state
    refined = HandParams(*(getattr(initial, n).detach() + best_delta[n] for n in GEOMETRY))
    return SMVRResult(
        refined,
        best_colour.clamp(0.0, 1.0),
        best_transforms,
        outcome.history,
        outcome.diverged,
        outcome.best_iteration,
        time.perf_counter() - start,
    )
