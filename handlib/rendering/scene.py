"""The Mitsuba side of rendering, shared by both image generators: settings and results, the hand
mesh, scenes with one film-space sensor per camera, the crop window a hand can touch, and one
differentiable launch (a Mitsuba render of a window as a torch op). :mod:`.renderer` composes them
into the ray tracer; :mod:`.raster` casts its visibility rays at the same scenes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import drjit as dr
import mitsuba as mi
import numpy as np
import torch

from handlib.geometry.cameras import Camera, project_camera_points
from handlib.geometry.surface import HandSurface
from handlib.rendering.backend import ensure_variant

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
    """The welded hand mesh (no UVs: textures read corner UVs, see handlib.rendering.uvtexture)."""
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


@dataclass
class MitsubaScene:
    """A loaded Mitsuba scene (the hand mesh, one sensor per camera) and its traversed parameters:
    what a generator updates and launches."""

    scene: mi.Scene
    params: mi.SceneParameters


def build_scene(
    cameras: Sequence[Camera], spp: int, mesh: mi.Mesh, integrator: dict, extra: dict | None = None
) -> MitsubaScene:
    """The scene of ``mesh`` seen by every camera (sensor ``i`` is ``cameras[i]``)."""
    scene = {"type": "scene", "integrator": integrator, "hand": mesh, **(extra or {})}
    for index, camera in enumerate(cameras):
        scene[f"camera_{index:03d}"] = sensor_dict(camera, spp)
    loaded = mi.load_dict(scene)
    return MitsubaScene(loaded, mi.traverse(loaded))


def integrator_dict(settings: RenderSettings, mode: Mode) -> dict:
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
    - Guiding off: ~10x faster on the CPU, same gradient direction (measured: 0.30 s
      against 3.4 s an iteration for 8 views of 128x96).
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


def launch(target: MitsubaScene, sensor: int, seed: int, window, camera: Camera, updates: dict) -> torch.Tensor:
    """Render ``window`` of camera ``sensor`` with the parameter ``updates`` (key -> tensor) as a
    differentiable torch op; (H, W, 3), zero outside the window."""
    return _Launch.apply(target.scene, target.params, sensor, seed, window, camera, tuple(updates), *updates.values())


def padded_envmap(image: torch.Tensor) -> torch.Tensor:
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
