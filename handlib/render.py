"""Differentiable multi-view rendering of a textured hand (Mitsuba 3 + PyTorch).

One :class:`Renderer` owns the Mitsuba scenes for a set of cameras and renders a
hand (vertices in mm, a UV texture and, in ``radiance`` mode, SH lighting) into
every camera. It returns linear RGB images and coverage (alpha) as torch tensors,
differentiable with respect to vertices, texture and lighting.

Modes (see ../shared/DESIGN.md, "redner concepts -> Mitsuba 3"):

- ``reflectance`` (SMVR): the texture colour of the visible surface, no lighting.
  The hand is an area emitter whose radiance is the texture.
- ``radiance`` (DMVR): a diffuse hand with the texture as albedo, lit by an SH
  environment map (hidden from the camera), with shadows.

Generators, swappable with nothing else changed:

- ``raytrace``: Mitsuba's projective-sampling integrator ``direct_projective``;
  gradients include silhouette and occlusion edges.
- ``raster``: a hard rasteriser (:mod:`handlib.raster`); visibility fixed per
  sample, gradients only through interpolation and shading.

Each camera is rendered in its own film space (:func:`handlib.cameras.film_space`:
camera coordinates with y scaled by fy/fx), with a square-pixel Mitsuba sensor at
the origin whose field of view and principal-point offset reproduce fx, cx, cy.
The images are therefore exactly InterHand2.6M's projection, fx != fy included.
In ``radiance`` mode the normals follow that scaled geometry; with InterHand2.6M's
fy/fx within a fraction of a percent of 1 the shading change is of that order.

Background: the hand is rendered over black and composited as
``image + (1 - alpha) * background``, where alpha is itself a differentiable
render (the hand as a white emitter), so gradients at silhouettes against the
background are right for any background colour or image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import drjit as dr
import mitsuba as mi
import numpy as np
import torch

from handlib import lighting
from handlib.backend import ensure_variant
from handlib.cameras import Camera, film_space, project_camera_points
from handlib.surface import HandSurface
from handlib.uvtexture import corner_uv_texture

Mode = Literal["reflectance", "radiance"]
Generator = Literal["raytrace", "raster"]
MODES = ("reflectance", "radiance")
GENERATORS = ("raytrace", "raster")


@dataclass(frozen=True)
class RenderSettings:
    """How images are generated. ``seed`` is the first iteration's; each call uses the next."""

    mode: Mode = "reflectance"
    generator: Generator = "raytrace"
    spp: int = 4
    silhouette_spp: int = 1  # Mitsuba's sppp: edge samples per *image* pixel, all spent on silhouettes
    seed: int = 0
    envmap_size: tuple[int, int] = (32, 64)  # (H, W) of the lat-long image the SH light is baked into

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}.")
        if self.generator not in GENERATORS:
            raise ValueError(f"generator must be one of {GENERATORS}, got {self.generator!r}.")
        if int(self.spp) < 1:
            raise ValueError(f"spp must be at least 1, got {self.spp}.")
        if int(self.silhouette_spp) < 1:
            raise ValueError(f"silhouette_spp must be at least 1, got {self.silhouette_spp}.")
        if min(self.envmap_size) < 2:
            raise ValueError(f"envmap_size must be at least 2x2, got {self.envmap_size}.")


@dataclass(frozen=True)
class Rendered:
    """Per camera, in the cameras' order: ``images[c]`` (H, W, 3) linear RGB, ``alphas[c]`` (H, W)."""

    images: tuple[torch.Tensor, ...]
    alphas: tuple[torch.Tensor, ...]


def sensor_intrinsics(camera: Camera, window: tuple[int, int, int, int] | None = None) -> dict:
    """Mitsuba perspective-sensor settings that image the ``window`` (x0, y0, width, height;
    the whole image by default) of ``camera`` in film space: a square-pixel sensor of focal fx
    whose principal point is moved by the window's offset."""
    x0, y0, width, height = window if window is not None else (0, 0, int(camera.width), int(camera.height))
    (fx, _), (cx, cy) = camera.focal, camera.princpt
    return {
        "x_fov": math.degrees(2.0 * math.atan(width / (2.0 * fx))),
        "principal_point_offset_x": (width / 2.0 - (cx - x0)) / width,
        "principal_point_offset_y": (height / 2.0 - (cy - y0)) / height,
    }


def sensor_dict(camera: Camera, spp: int) -> dict:
    """A Mitsuba perspective sensor at the film-space origin that images like ``camera``."""
    width, height = int(camera.width), int(camera.height)
    intrinsics = sensor_intrinsics(camera)
    return {
        "type": "perspective",
        "fov_axis": "x",
        "fov": intrinsics.pop("x_fov"),
        **intrinsics,
        "near_clip": 1.0,  # mm
        "far_clip": 1.0e6,
        # +z forward, x right, y down: OpenCV's camera frame, as InterHand2.6M's.
        "to_world": mi.ScalarTransform4f().look_at(origin=[0, 0, 0], target=[0, 0, 1], up=[0, -1, 0]),
        # Box filter: a pixel is the integral of its square. sample_border lets hands that
        # cross the image border (common in InterHand2.6M's crops) get edge gradients there.
        "film": {
            "type": "hdrfilm",
            "width": width,
            "height": height,
            "pixel_format": "rgb",
            "rfilter": {"type": "box"},
            "sample_border": True,
        },
        "sampler": {"type": "independent", "sample_count": int(spp)},
    }


def hand_mesh(surface: HandSurface, props: dict, with_normals: bool) -> mi.Mesh:
    """The welded hand mesh (no UVs: textures read corner UVs, see handlib.uvtexture)."""
    ensure_variant()
    properties = mi.Properties()
    for key, value in props.items():
        properties[key] = value if isinstance(value, mi.Object) else mi.load_dict(value)
    mesh = mi.Mesh(
        "hand", surface.num_vertices, int(surface.faces.shape[0]), props=properties, has_vertex_normals=with_normals
    )
    params = mi.traverse(mesh)
    params["faces"] = mi.UInt32(surface.faces.numpy().astype(np.uint32).ravel())
    params.update()
    return mesh


def _scene(cameras: Sequence[Camera], spp: int, mesh: mi.Mesh, integrator: dict, extra: dict | None = None):
    scene = {"type": "scene", "integrator": integrator, "hand": mesh, **(extra or {})}
    for index, camera in enumerate(cameras):
        scene[f"camera_{index:03d}"] = sensor_dict(camera, spp)
    return mi.load_dict(scene)


def _integrator(settings: RenderSettings, mode: Mode) -> dict:
    """Mitsuba's direct projective-sampling integrator, set up for hands.

    - ``sppc = spp``: samples per pixel for the image and its interior derivatives.
    - ``sppp = silhouette_spp``: Mitsuba draws this many silhouette samples per image
      pixel and spends them all on the silhouette, a few hundred per pixel of edge
      length at 1 for a hand at InterHand2.6M's scale; at 4 it took 85% of an
      iteration (334x512, measured 0.37 s vs 0.13 s at 1).
    - ``sppi = 0``: no derivatives of *indirect* visibility (shadow boundaries). On the
      open hand that term moved a translation gradient from +11 (finite differences)
      to -20, while silhouettes and shading alone give +11. Shadows are still
      rendered; only their boundaries' motion is not differentiated.
    - Guiding off: ~10x faster on the CPU, same gradient direction (../shared/DESIGN.md).
    """
    return {
        "type": "direct_projective",
        "guiding": "none",
        "sppc": int(settings.spp),
        "sppp": int(settings.silhouette_spp),
        "sppi": 0,
        "hide_emitters": mode == "radiance",
    }


def _to_drjit(key: str, value: torch.Tensor, grad: bool):
    tensor = mi.TensorXf(value.detach().to(torch.float32).contiguous())
    value = tensor.array if key.endswith(("vertex_positions", "vertex_normals")) else tensor
    if grad:
        dr.enable_grad(value)
    return value


#: Crop windows grow to multiples of this many pixels, so that a moving hand rarely
#: changes the launch size (each new size may compile new kernels).
WINDOW_STEP = 32


def hand_window(camera: Camera, positions: torch.Tensor, margin: float = 2.0) -> tuple[int, int, int, int]:
    """(x0, y0, width, height) of the image region the hand can touch: the bounding box of
    its film-space ``positions`` projected, plus ``margin`` pixels, grown to multiples of
    :data:`WINDOW_STEP` and clipped to the image. Outside it every pixel is background."""
    fx = camera.focal[0]
    pixels = project_camera_points(positions.detach().double(), np.array([fx, fx]), camera.princpt)
    x, y = pixels.unbind(-1)
    box = []
    for low, high, size in ((x.min(), x.max(), camera.width), (y.min(), y.max(), camera.height)):
        start, stop = max(0, math.floor(low - margin)), min(size, math.ceil(high + margin))
        if stop <= start:
            return 0, 0, 0, 0  # entirely outside this image
        extent = min(size, math.ceil((stop - start) / WINDOW_STEP) * WINDOW_STEP)
        start = min(max(0, start - (extent - (stop - start)) // 2), size - extent)
        box.append((start, extent))
    return box[0][0], box[1][0], box[0][1], box[1][1]


def _set_window(scene, sensor: int, window, camera: Camera) -> None:
    """Turn the sensor into the camera of the window alone: a film of the window's size
    with the principal point moved by its offset. (Mitsuba's film crop windows would do
    the same for the image, but its projective edge sampling then lost half the
    silhouette gradient.)"""
    sensor_object = scene.sensors()[sensor]
    _, _, width, height = window
    # Set on every launch: Mitsuba merges identical sensors and films, so one camera's
    # window can change another's; the scene's map names only one of the merged paths.
    sensor_params = mi.traverse(sensor_object)
    sensor_params["film.size"] = mi.ScalarVector2u(width, height)
    sensor_params["film.crop_size"] = mi.ScalarVector2u(width, height)
    sensor_params["film.crop_offset"] = mi.ScalarPoint2u(0, 0)
    for key, value in sensor_intrinsics(camera, window).items():
        sensor_params[key] = value
    sensor_params.update()


class _Launch(torch.autograd.Function):
    """One Mitsuba render of a crop ``window`` of camera ``sensor`` as a torch op, padded to
    the full (H, W, 3) image. The backward pass sets the scene back to this launch's inputs
    before differentiating, so many cameras (or many calls) can share one scene and still
    be backpropagated later, in any order."""

    @staticmethod
    def forward(ctx, scene, params, sensor: int, seed: int, window, camera, keys: tuple, *values):
        ctx.launch = (scene, params, sensor, seed, window, camera, keys)
        ctx.save_for_backward(*values)
        x0, y0, width, height = window
        image = torch.zeros(camera.height, camera.width, 3, device=values[0].device)
        if width == 0:
            return image
        with dr.suspend_grad():
            for key, value in zip(keys, values):
                params[key] = _to_drjit(key, value, False)
            _set_window(scene, sensor, window, camera)
            params.update()
            crop = mi.render(scene, params, sensor=sensor, seed=seed)  # spp: the integrator's
        image[y0 : y0 + height, x0 : x0 + width] = crop.torch().to(image.device)
        return image

    @staticmethod
    def backward(ctx, grad_image):
        scene, params, sensor, seed, window, camera, keys = ctx.launch
        values = ctx.saved_tensors
        wanted = ctx.needs_input_grad[7:]
        x0, y0, width, height = window
        if width == 0:
            return (None,) * 7 + tuple(torch.zeros_like(v) if need else None for v, need in zip(values, wanted))
        inputs = [_to_drjit(key, value, need) for key, value, need in zip(keys, values, wanted)]
        for key, value in zip(keys, inputs):
            params[key] = value
        _set_window(scene, sensor, window, camera)
        params.update()
        grad_crop = grad_image[y0 : y0 + height, x0 : x0 + width].to(torch.float32).contiguous()
        scene.integrator().render_backward(scene, params, mi.TensorXf(grad_crop), sensor=sensor, seed=seed + 1_000_003)
        grads = [
            dr.grad(x).torch().reshape(v.shape).to(v) if need else None for x, v, need in zip(inputs, values, wanted)
        ]
        return (None,) * 7 + tuple(grads)


def _launch(scene, params, sensor: int, seed: int, window, camera: Camera, updates: dict) -> torch.Tensor:
    return _Launch.apply(scene, params, sensor, seed, window, camera, tuple(updates), *updates.values())


def _padded_envmap(image: torch.Tensor) -> torch.Tensor:
    """Mitsuba's envmap stores its image with the last and first columns wrapped around."""
    return torch.cat([image[:, -1:], image, image[:, :1]], dim=1)


def as_background(background, camera: Camera) -> torch.Tensor:
    """A camera's background as (H, W, 3) or (1, 1, 3): None (black), an RGB colour, or an image."""
    if background is None:
        return torch.zeros(1, 1, 3)
    value = torch.as_tensor(
        np.asarray(background) if not isinstance(background, torch.Tensor) else background, dtype=torch.float32
    )
    if value.shape == (3,):
        value = value.reshape(1, 1, 3)
    elif value.shape != (camera.height, camera.width, 3):
        raise ValueError(
            f"Background for camera {camera.name!r} must be an RGB colour (3,) or an image "
            f"({camera.height}, {camera.width}, 3); got {tuple(value.shape)}."
        )
    if not torch.isfinite(value).all():
        raise ValueError(f"Background for camera {camera.name!r} contains NaN or infinite values.")
    return value


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
        spp = settings.spp
        black = {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.0}}
        if settings.generator == "raytrace":
            texture = corner_uv_texture(surface.corner_uv_array(), np.full((2, 2, 3), 0.5))
            integrator = _integrator(settings, settings.mode)
            if settings.mode == "reflectance":
                hand = {"bsdf": black, "emitter": mi.load_dict({"type": "area", "radiance": texture})}
                self._hand = _scene(self.cameras, spp, hand_mesh(surface, hand, False), integrator)
            else:
                hand = {"bsdf": mi.load_dict({"type": "diffuse", "reflectance": texture})}
                height, width = settings.envmap_size
                light = {"light": {"type": "envmap", "bitmap": mi.Bitmap(np.ones((height, width, 3), np.float32))}}
                self._hand = _scene(self.cameras, spp, hand_mesh(surface, hand, True), integrator, light)
            self._hand_params = mi.traverse(self._hand)
        # The coverage (alpha) pass, also the geometry the raster baseline casts its rays at.
        coverage = {"bsdf": black, "emitter": {"type": "area", "radiance": {"type": "rgb", "value": 1.0}}}
        self._coverage = _scene(
            self.cameras, spp, hand_mesh(surface, coverage, False), _integrator(settings, "reflectance")
        )
        self._coverage_params = mi.traverse(self._coverage)

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
                raise ValueError("radiance mode needs SH light coefficients (bands**2, 3); see handlib.lighting.")
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
            from handlib.raster import rasterize

            return rasterize(self, vertices, texture, light, backgrounds, seed)
        images, alphas = [], []
        vertices = self.surface.close(vertices)
        for index, camera in enumerate(self.cameras):
            # Both passes of a camera share a seed, hence their samples: where alpha is 0
            # the hand image is exactly 0 and the composite exactly the background.
            launch_seed = seed * len(self.cameras) + index
            positions = film_space(camera, vertices.to(torch.float32)).contiguous()
            window = hand_window(camera, positions)
            alpha = _launch(
                self._coverage,
                self._coverage_params,
                index,
                launch_seed,
                window,
                camera,
                {"hand.vertex_positions": positions},
            )[..., 0]
            updates = {"hand.vertex_positions": positions}
            if self.settings.mode == "reflectance":
                updates["hand.emitter.radiance.data"] = texture.to(torch.float32).contiguous()
            else:
                updates["hand.vertex_normals"] = self.surface.normals(positions).contiguous()
                updates["hand.bsdf.reflectance.data"] = texture.to(torch.float32).contiguous()
                camera_to_world = torch.as_tensor(camera.camrot.T, dtype=torch.float32)
                height, width = self.settings.envmap_size
                envmap = lighting.latlong_image(light.to(torch.float32), camera_to_world, height, width)
                updates["light.data"] = _padded_envmap(envmap).contiguous()
            image = _launch(self._hand, self._hand_params, index, launch_seed, window, camera, updates)
            if bool((backgrounds[index] != 0).any()):
                image = image + (1.0 - alpha[..., None]) * backgrounds[index]
            # Over black, alpha is left out of the image's graph: its backward pass (a
            # second projective render) then runs only if a loss uses alpha itself.
            images.append(image)
            alphas.append(alpha)
        return Rendered(tuple(images), tuple(alphas))
