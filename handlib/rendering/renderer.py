"""Differentiable multi-view rendering of a textured hand (Mitsuba 3 + PyTorch).

One :class:`Renderer` owns the Mitsuba scenes for a set of cameras and renders a
hand (vertices in mm, a UV texture and, in ``radiance`` mode, SH lighting) into
every camera. It returns linear RGB images and coverage (alpha) as torch tensors,
differentiable with respect to vertices, texture and lighting.

Modes (the papers used redner; these are its two channels in Mitsuba 3):

- ``reflectance`` (SMVR): the texture colour of the visible surface, no lighting.
  The hand is an area emitter whose radiance is the texture.
- ``radiance`` (DMVR): a diffuse hand with the texture as albedo, lit by an SH
  environment map (hidden from the camera), with shadows.

Generators, swappable with nothing else changed:

- ``raytrace``: Mitsuba's projective-sampling integrator ``direct_projective``;
  gradients include silhouette and occlusion edges.
- ``raster``: a hard rasteriser (:mod:`handlib.rendering.raster`); visibility fixed per
  sample, gradients only through interpolation and shading.

Scene layouts (``RenderSettings.layout``, see :mod:`handlib.rendering.scene`):

- ``shared`` (default): one world-space scene for all cameras whose fx, fy one square-pixel
  focal length images to within :data:`~handlib.rendering.scene.ANISOTROPY_PX` (every
  InterHand2.6M camera); the hand is set once per call. Other cameras fall back to film space.
- ``per_camera``: every camera in its own film space
  (:func:`handlib.geometry.cameras.film_space`: camera coordinates with y scaled by fy/fx),
  with a square-pixel sensor at the origin whose field of view and principal-point offset
  reproduce fx, cx, cy: exactly InterHand2.6M's projection for any fx, fy. In ``radiance``
  mode the normals follow that scaled geometry.

Background (``RenderSettings.backdrop``): a colour is, by default (``traced``), what the
ray tracer's camera rays see when they miss the hand (:mod:`handlib.rendering.backdrop`), so
its silhouette gradients come from the one render, and alpha is the coverage of that render's
samples (no gradient). An image background (and every camera under ``composite``) is
composited as ``image + (1 - alpha) * background``, where alpha is itself a differentiable
render (the hand as a white emitter), so gradients at silhouettes against the background are
right for any background colour or image; a loss on alpha itself needs ``composite``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import mitsuba as mi
import numpy as np
import torch

from handlib.geometry.cameras import Camera, film_space
from handlib.geometry.surface import HandSurface
from handlib.rendering import lighting
from handlib.rendering.backend import ensure_variant
from handlib.rendering.raster import rasterize
from handlib.rendering.scene import (
    ANISOTROPY_PX,
    GENERATORS,
    MODES,
    Generator,
    MitsubaScene,
    Mode,
    Rendered,
    RenderSettings,
    View,
    as_background,
    build_scene,
    hand_mesh,
    hand_window,
    integrator_dict,
    launch,
    padded_envmap,
    square_pixel_focal,
)
from handlib.rendering.uvtexture import corner_uv_texture

__all__ = ["GENERATORS", "MODES", "Generator", "Mode", "Rendered", "RenderSettings", "Renderer"]


@dataclass(frozen=True)
class _Group:
    """Cameras rendered from one pair of scenes: the hand (image) and the coverage (alpha) pass.
    ``world``: the shared layout (one geometry for all); otherwise each camera's film space."""

    indices: tuple[int, ...]
    hand: MitsubaScene | None
    coverage: MitsubaScene

    @property
    def world(self) -> bool:
        return self.coverage.focals[0] is not None


class Renderer:
    """Renders one hand into a fixed set of cameras; scenes are built once and updated per call."""

    def __init__(self, cameras: Sequence[Camera], surface: HandSurface, settings: RenderSettings = RenderSettings()):
        if len(cameras) == 0:
            raise ValueError("Renderer needs at least one camera.")
        ensure_variant()
        self.cameras = tuple(cameras)
        self.surface = surface
        self.settings = settings
        self.iteration = 0
        focals = [square_pixel_focal(camera) for camera in self.cameras]
        shared = settings.generator == "raytrace" and settings.layout == "shared"
        #: Per camera, True where it is rendered in the shared world scene.
        self.shared = tuple(shared and displacement <= ANISOTROPY_PX for _, displacement in focals)
        self.groups = []
        for world in (True, False):
            indices = tuple(i for i, inside in enumerate(self.shared) if inside == world)
            if indices:
                group_focals = [focals[i][0] for i in indices] if world else None
                self.groups.append(self._group(indices, group_focals))

    def _group(self, indices: tuple[int, ...], focals) -> _Group:
        settings, surface = self.settings, self.surface
        cameras = [self.cameras[i] for i in indices]
        spp = settings.spp
        black = {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.0}}
        hand = None
        if settings.generator == "raytrace":
            texture = corner_uv_texture(surface.corner_uv_array(), np.full((2, 2, 3), 0.5))
            integrator = integrator_dict(settings, settings.mode)
            if settings.mode == "reflectance":
                props = {"bsdf": black, "emitter": mi.load_dict({"type": "area", "radiance": texture})}
                hand = build_scene(cameras, spp, hand_mesh(surface, props, False), integrator, focals=focals)
            else:
                props = {"bsdf": mi.load_dict({"type": "diffuse", "reflectance": texture})}
                height, width = settings.envmap_size
                light = {"light": {"type": "envmap", "bitmap": mi.Bitmap(np.ones((height, width, 3), np.float32))}}
                hand = build_scene(cameras, spp, hand_mesh(surface, props, True), integrator, light, focals)
        # The coverage (alpha) pass, also the geometry the raster baseline casts its rays at.
        props = {"bsdf": black, "emitter": {"type": "area", "radiance": {"type": "rgb", "value": 1.0}}}
        coverage = build_scene(
            cameras, spp, hand_mesh(surface, props, False), integrator_dict(settings, "reflectance"), focals=focals
        )
        return _Group(indices, hand, coverage)

    @property
    def coverage(self) -> MitsubaScene:
        """The film-space coverage scene of every camera (the raster baseline's)."""
        if len(self.groups) != 1 or self.groups[0].world:
            raise AttributeError("Only a renderer whose cameras are all in film space has one coverage scene.")
        return self.groups[0].coverage

    # ------------------------------------------------------------------ checks
    def _check(self, vertices: torch.Tensor, texture: torch.Tensor, light: torch.Tensor | None) -> None:
        expected = (self.surface.num_model_vertices, 3)
        if vertices.ndim != 2 or tuple(vertices.shape) != expected:
            raise ValueError(f"vertices must have shape {expected} (one hand, mm), got {tuple(vertices.shape)}.")
        if not torch.isfinite(vertices).all():
            raise ValueError("vertices contain NaN or infinite values; check the hand parameters.")
        if texture.ndim != 3 or texture.shape[2] != 3 or min(texture.shape[:2]) < 1:
            raise ValueError(f"texture must be an RGB image (H, W, 3), got {tuple(texture.shape)}.")
        if not torch.isfinite(texture).all():
            raise ValueError("texture contains NaN or infinite values.")
        if self.settings.mode == "radiance":
            if light is None:
                raise ValueError(
                    "radiance mode needs SH light coefficients (bands**2, 3); see handlib.rendering.lighting."
                )
            lighting.bands_of(light)
        for camera in self.cameras:
            depth = camera.world_to_camera(vertices.detach().double())[:, 2]
            if (depth <= 1.0).any():
                raise ValueError(
                    f"Some vertices are behind or at camera {camera.name!r}; check units (mm) "
                    "and the hand's translation."
                )

    # ------------------------------------------------------------------ render
    def render(
        self,
        vertices: torch.Tensor,
        texture: torch.Tensor,
        light: torch.Tensor | None = None,
        backgrounds: Sequence | None = None,
        seed: int | None = None,
    ) -> Rendered:
        """Render ``vertices`` (V, 3) mm with ``texture`` (H, W, 3) and ``light`` (bands**2, 3).

        ``backgrounds``: one per camera (None, an RGB colour, or an (H, W, 3) image),
        or None for black everywhere. ``seed`` overrides the per-call seed.
        """
        self._check(vertices, texture, light)
        if backgrounds is None:
            backgrounds = [None] * len(self.cameras)
        if len(backgrounds) != len(self.cameras):
            raise ValueError(f"Got {len(backgrounds)} backgrounds for {len(self.cameras)} cameras.")
        backgrounds = [as_background(bg, cam) for bg, cam in zip(backgrounds, self.cameras)]
        if seed is None:
            seed = self.settings.seed + self.iteration
            self.iteration += 1
        if self.settings.generator == "raster":
            return rasterize(
                self.cameras, self.surface, self.settings, self.coverage, vertices, texture, light, backgrounds, seed
            )
        return self._raytrace(vertices, texture, light, backgrounds, seed)

    def _raytrace(self, vertices, texture, light, backgrounds, seed: int) -> Rendered:
        """The ``raytrace`` generator: per group of cameras, the hand pass and, where composited,
        the coverage pass."""
        count = len(self.cameras)
        images, alphas = [None] * count, [None] * count
        closed = self.surface.close(vertices).to(torch.float32)
        traced = [self._traced_colour(background) for background in backgrounds]
        composite = [
            self.settings.backdrop == "composite" or (colour is None and bool((background != 0).any()))
            for colour, background in zip(traced, backgrounds)
        ]
        for group in self.groups:
            if group.world:
                # One geometry for every camera of the group: one launch op per pass.
                batches = [(group.indices, closed.contiguous(), torch.eye(3))]
            else:
                batches = [
                    ((i,), film_space(self.cameras[i], closed).contiguous(), self._camera_to_world(i))
                    for i in group.indices
                ]
            for indices, positions, local_to_world in batches:
                views = [
                    View(
                        group.indices.index(i),
                        seed * count + i,
                        hand_window(self.cameras[i], positions, world=group.world),
                        self.cameras[i],
                        traced[i],
                    )
                    for i in indices
                ]
                updates = self._hand_updates(positions, texture, light, local_to_world)
                hand, coverage = launch(group.hand, views, updates)
                for i, image, alpha in zip(indices, hand, coverage):
                    images[i], alphas[i] = image, alpha
                # The differentiable coverage pass where a background is composited (or every
                # camera under "composite"). Both passes of a camera share a seed, hence their
                # samples: where alpha is 0 the hand image is exactly 0, the composite exactly
                # the background.
                composited = [(i, replace(v, background=None)) for i, v in zip(indices, views) if composite[i]]
                if composited:
                    covered, _ = launch(
                        group.coverage, [v for _, v in composited], {"hand.vertex_positions": positions}
                    )
                    for (i, _), alpha in zip(composited, covered):
                        alpha = alpha[..., 0]
                        if bool((backgrounds[i] != 0).any()):
                            images[i] = images[i] + (1.0 - alpha[..., None]) * backgrounds[i]
                        alphas[i] = alpha
        return Rendered(tuple(images), tuple(alphas))

    def _traced_colour(self, background: torch.Tensor) -> tuple[float, float, float] | None:
        """The colour the ray tracer shows where no hand is, for a non-black colour background
        under ``backdrop="traced"``; None where the background is black or composited."""
        if self.settings.backdrop != "traced" or background.shape != (1, 1, 3) or not bool(background.any()):
            return None
        return tuple(float(c) for c in background.reshape(3))

    def _camera_to_world(self, index: int) -> torch.Tensor:
        return torch.as_tensor(self.cameras[index].camrot.T, dtype=torch.float32)

    def _hand_updates(self, positions, texture, light, local_to_world) -> dict:
        """The hand pass's parameters: geometry, texture and (radiance) normals and environment,
        the environment rotated from the scene's frame (``local_to_world``) into the world's."""
        updates = {"hand.vertex_positions": positions}
        if self.settings.mode == "reflectance":
            updates["hand.emitter.radiance.data"] = texture.to(torch.float32).contiguous()
        else:
            updates["hand.vertex_normals"] = self.surface.normals(positions).contiguous()
            updates["hand.bsdf.reflectance.data"] = texture.to(torch.float32).contiguous()
            height, width = self.settings.envmap_size
            envmap = lighting.latlong_image(light.to(torch.float32), local_to_world, height, width)
            updates["light.data"] = padded_envmap(envmap).contiguous()
        return updates
