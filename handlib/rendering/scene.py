"""The Mitsuba side of rendering, shared by both image generators: settings and results, the hand
mesh, scenes and their sensors, the crop window a hand can touch, and the differentiable launches
(Mitsuba renders of windows as torch ops). :mod:`.renderer` composes them into the ray tracer;
:mod:`.raster` casts its visibility rays at the same scenes.

Two scene layouts:

- **shared** (the default): one scene in world coordinates holds the hand once and a sensor per
  camera, posed by the camera's extrinsics. The hand's geometry is set (and Mitsuba's BVH
  rebuilt) once per render call, forward and backward together, whatever the number of cameras.
  Mitsuba's perspective sensor has square pixels, so a camera with fx != fy is imaged with the
  one focal length :func:`square_pixel_focal` picks; a camera is admitted only when that moves
  no pixel of its image by more than :data:`ANISOTROPY_PX` (InterHand2.6M's cameras differ by
  at most about 0.02 px).
- **film** (the previous path, ``layout="per_camera"``, and the fallback for the other cameras):
  one scene per camera set in that camera's film space (camera coordinates with y scaled by
  fy / fx), exact for any fx, fy; the geometry is set once per camera and pass.
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
from handlib.rendering.backdrop import register as register_backdrop
from handlib.rendering.backend import ensure_variant

Mode = Literal["reflectance", "radiance"]
Generator = Literal["raytrace", "raster"]
Layout = Literal["shared", "per_camera"]
Backdrop = Literal["traced", "composite"]
MODES = ("reflectance", "radiance")
GENERATORS = ("raytrace", "raster")
LAYOUTS = ("shared", "per_camera")
BACKDROPS = ("traced", "composite")

#: The largest displacement (pixels) the shared layout's square-pixel sensor may make anywhere in
#: an anisotropic camera's image; cameras beyond it are rendered in their own film space.
ANISOTROPY_PX = 0.05


@dataclass(frozen=True)
class RenderSettings:
    """How images are generated. ``seed`` is the first iteration's; each call uses the next."""

    mode: Mode = "reflectance"
    generator: Generator = "raytrace"
    spp: int = 4
    silhouette_spp: int = 1  # Mitsuba's sppp: edge samples per *image* pixel, all spent on silhouettes
    seed: int = 0
    envmap_size: tuple[int, int] = (32, 64)  # (H, W) of the lat-long image the SH light is baked into
    layout: Layout = "shared"  # ray tracer: one world scene for all cameras, or one film-space scene each
    # ray tracer, colour backgrounds: seen by the camera rays that miss the hand ("traced", one
    # render per view), or composited with a differentiable coverage render ("composite", two)
    backdrop: Backdrop = "traced"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}.")
        if self.generator not in GENERATORS:
            raise ValueError(f"generator must be one of {GENERATORS}, got {self.generator!r}.")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}.")
        if self.backdrop not in BACKDROPS:
            raise ValueError(f"backdrop must be one of {BACKDROPS}, got {self.backdrop!r}.")
        if int(self.spp) < 1:
            raise ValueError(f"spp must be at least 1, got {self.spp}.")
        if int(self.silhouette_spp) < 1:
            raise ValueError(f"silhouette_spp must be at least 1, got {self.silhouette_spp}.")
        if min(self.envmap_size) < 2:
            raise ValueError(f"envmap_size must be at least 2x2, got {self.envmap_size}.")


@dataclass(frozen=True)
class Rendered:
    """Per camera, in the cameras' order: ``images[c]`` (H, W, 3) linear RGB, ``alphas[c]`` (H, W)
    coverage (differentiable where the ray tracer composites, see ``RenderSettings.backdrop``)."""

    images: tuple[torch.Tensor, ...]
    alphas: tuple[torch.Tensor, ...]


def square_pixel_focal(camera: Camera) -> tuple[float, float]:
    """The focal length f of the square-pixel pinhole closest to ``camera`` (fx, fy) over its whole
    image, and the largest displacement (pixels) it makes there: a pixel at distance r from the
    principal point along x moves by r |f / fx - 1|, along y by r |f / fy - 1|; f balances the two."""
    (fx, fy), (cx, cy) = camera.focal, camera.princpt
    reach_x = max(cx, camera.width - cx) / fx
    reach_y = max(cy, camera.height - cy) / fy
    focal = (reach_x * fx + reach_y * fy) / (reach_x + reach_y)
    return float(focal), float(max(reach_x * abs(focal - fx), reach_y * abs(focal - fy)))


def sensor_intrinsics(
    camera: Camera, window: tuple[int, int, int, int] | None = None, focal: float | None = None
) -> dict:
    """Mitsuba perspective-sensor settings that image the ``window`` (x0, y0, width, height;
    the whole image by default) of ``camera``: a square-pixel sensor of focal ``focal`` (fx by
    default, as in film space) whose principal point is moved by the window's offset."""
    x0, y0, width, height = window if window is not None else (0, 0, int(camera.width), int(camera.height))
    (cx, cy) = camera.princpt
    fx = float(camera.focal[0]) if focal is None else float(focal)
    return {
        "x_fov": math.degrees(2.0 * math.atan(width / (2.0 * fx))),
        "principal_point_offset_x": (width / 2.0 - (cx - x0)) / width,
        "principal_point_offset_y": (height / 2.0 - (cy - y0)) / height,
    }


#: OpenCV's camera axes (x right, y down, z forward) in a Mitsuba sensor's local frame (x left, y up).
_OPENCV_TO_MITSUBA = np.diag([-1.0, -1.0, 1.0])


def sensor_dict(camera: Camera, spp: int, focal: float | None = None) -> dict:
    """A Mitsuba perspective sensor that images like ``camera``: at the film-space origin
    (``focal`` None), or posed in world coordinates with the square-pixel ``focal``."""
    width, height = int(camera.width), int(camera.height)
    intrinsics = sensor_intrinsics(camera, focal=focal)
    if focal is None:
        # +z forward, x right, y down: OpenCV's camera frame, as InterHand2.6M's.
        to_world = mi.ScalarTransform4f().look_at(origin=[0, 0, 0], target=[0, 0, 1], up=[0, -1, 0])
    else:
        pose = np.eye(4)
        pose[:3, :3] = np.asarray(camera.camrot, dtype=np.float64).T @ _OPENCV_TO_MITSUBA
        pose[:3, 3] = camera.campos
        to_world = mi.ScalarTransform4f(pose)
    return {
        "type": "perspective",
        "fov_axis": "x",
        "fov": intrinsics.pop("x_fov"),
        **intrinsics,
        "near_clip": 1.0,  # mm
        "far_clip": 1.0e6,
        "to_world": to_world,
        # Box filter: a pixel is the integral of its square. sample_border lets hands that
        # cross the image border (common in InterHand2.6M's crops) get edge gradients there.
        "film": {
            "type": "hdrfilm",
            "width": width,
            "height": height,
            "pixel_format": "rgba",  # alpha: the coverage of the same samples (backdrop.py)
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
    what a generator updates and launches. ``focals`` holds each sensor's square-pixel focal in
    the shared (world) layout, None in film space. ``token`` changes whenever :meth:`set` does,
    so a launch can tell whether the scene still holds its inputs."""

    scene: mi.Scene
    params: mi.SceneParameters
    focals: tuple[float | None, ...] = ()
    token: object = None

    def set(self, keys: Sequence[str], values: Sequence[torch.Tensor], grads: Sequence[bool]) -> list:
        """Set the parameters ``keys`` to ``values`` (gradient tracking where ``grads``), rebuild what
        depends on them (the BVH for vertices) and return the Dr.Jit variables now in the scene."""
        inputs = [_to_drjit(key, value, grad) for key, value, grad in zip(keys, values, grads)]
        for key, value in zip(keys, inputs):
            self.params[key] = value
        self.params.update()
        self.token = object()
        return inputs


def build_scene(
    cameras: Sequence[Camera],
    spp: int,
    mesh: mi.Mesh,
    integrator: dict,
    extra: dict | None = None,
    focals: Sequence[float] | None = None,
) -> MitsubaScene:
    """The scene of ``mesh`` seen by every camera (sensor ``i`` is ``cameras[i]``): in world
    coordinates with square-pixel ``focals`` (the shared layout), or in film space (None)."""
    scene = {"type": "scene", "integrator": integrator, "hand": mesh, **(extra or {})}
    for index, camera in enumerate(cameras):
        scene[f"camera_{index:03d}"] = sensor_dict(camera, spp, None if focals is None else focals[index])
    loaded = mi.load_dict(scene)
    focals = tuple(focals) if focals is not None else (None,) * len(cameras)
    return MitsubaScene(loaded, mi.traverse(loaded), focals)


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
    - Camera rays that miss every shape see the launch's background colour (:mod:`.backdrop`).
    """
    return {
        "type": register_backdrop(),  # direct_projective, with a background colour per launch
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


def hand_window(
    camera: Camera, positions: torch.Tensor, margin: float = 2.0, world: bool = False
) -> tuple[int, int, int, int]:
    """(x0, y0, width, height) of the image region the hand can touch: the bounding box of
    its ``positions`` (film space, or world with ``world``) projected, plus ``margin`` pixels,
    grown to multiples of :data:`WINDOW_STEP` and clipped to the image. Outside it every pixel
    is background."""
    if world:
        pixels = camera.project(positions.detach().double())[0]
    else:
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


def _set_window(target: MitsubaScene, sensor: int, window, camera: Camera) -> None:
    """Turn the sensor into the camera of the window alone: a film of the window's size
    with the principal point moved by its offset. (Mitsuba's film crop windows would do
    the same for the image, but its projective edge sampling then lost half the
    silhouette gradient.)"""
    sensor_object = target.scene.sensors()[sensor]
    _, _, width, height = window
    # Set on every launch: Mitsuba merges identical sensors and films, so one camera's
    # window can change another's; the scene's map names only one of the merged paths.
    sensor_params = mi.traverse(sensor_object)
    sensor_params["film.size"] = mi.ScalarVector2u(width, height)
    sensor_params["film.crop_size"] = mi.ScalarVector2u(width, height)
    sensor_params["film.crop_offset"] = mi.ScalarPoint2u(0, 0)
    for key, value in sensor_intrinsics(camera, window, target.focals[sensor]).items():
        sensor_params[key] = value
    sensor_params.update()


@dataclass(frozen=True)
class View:
    """One launch: camera ``camera`` is sensor ``sensor`` of its scene, rendered over ``window``
    (x0, y0, width, height) with ``seed``; where no shape is, the image is ``background`` (an RGB
    colour; None: black), inside the window as the ray tracer sees it, outside it everywhere."""

    sensor: int
    seed: int
    window: tuple[int, int, int, int]
    camera: Camera
    background: tuple[float, float, float] | None = None


def _prepare(target: MitsubaScene, view: View) -> None:
    _set_window(target, view.sensor, view.window, view.camera)
    target.scene.integrator().set_background(view.background)


def _render_window(target: MitsubaScene, view: View) -> mi.TensorXf:
    _prepare(target, view)
    # The integrator's own primal render: spp is the integrator's, no AD graph is recorded.
    return target.scene.integrator().render(target.scene, sensor=view.sensor, seed=view.seed)


class _Views(torch.autograd.Function):
    """Mitsuba renders of several views of one scene as one torch op with two outputs per view:
    the image (H, W, 3), its background outside the window, then (after all images) the coverage
    of the same samples (H, W), not differentiable. The inputs are set in the scene once, with
    gradient tracking where torch wants gradients, and the backward pass differentiates every
    view against those same variables, so a shared scene is updated (its BVH rebuilt) once for
    the forward and backward passes of all its views. If the scene was set again in between
    (another call, another camera's film space), the backward pass sets this call's inputs back
    first."""

    @staticmethod
    def forward(ctx, target: MitsubaScene, views: tuple, keys: tuple, *values):
        wanted = ctx.needs_input_grad[3:]
        ctx.set_materialize_grads(False)
        ctx.launch = (target, views, keys, target.set(keys, values, wanted))
        ctx.token = target.token
        ctx.save_for_backward(*values)
        images, alphas = [], []
        with dr.suspend_grad():
            for view in views:
                camera, (x0, y0, width, height) = view.camera, view.window
                image = torch.zeros(camera.height, camera.width, 4, device=values[0].device)
                if view.background is not None:
                    image[..., :3] = torch.tensor(view.background)
                if width > 0:
                    crop = _render_window(target, view)
                    image[y0 : y0 + height, x0 : x0 + width] = crop.torch().to(image.device)
                images.append(image[..., :3].contiguous())
                alphas.append(image[..., 3].contiguous())
        ctx.mark_non_differentiable(*alphas)
        return tuple(images) + tuple(alphas)

    @staticmethod
    def backward(ctx, *grad_outputs):
        target, views, keys, inputs = ctx.launch
        grad_images = grad_outputs[: len(views)]  # the coverages have none
        values = ctx.saved_tensors
        wanted = ctx.needs_input_grad[3:]
        if target.token is not ctx.token:
            inputs = target.set(keys, values, wanted)
            ctx.token = target.token
        inputs = list(inputs)
        for variable, need in zip(inputs, wanted):
            if need:
                dr.clear_grad(variable)
        # A traversal clears the AD edges from the environment's data to the texture Mitsuba
        # builds from it, so a second view's gradient would not reach it: it is set afresh
        # (no BVH rebuild) before every further view. The hand's parameters (vertices, normals,
        # its texture) keep their edges, as the gradient checks of both layouts show.
        fresh = [j for j, key in enumerate(keys) if wanted[j] and not key.startswith("hand.")]
        earlier = {j: [] for j in fresh}  # the variables a re-set replaced, whose gradients still count
        integrator = target.scene.integrator()
        done = 0
        for view, grad_image in zip(views, grad_images):
            x0, y0, width, height = view.window
            if grad_image is None or width == 0:
                continue
            grad_window = grad_image[y0 : y0 + height, x0 : x0 + width]
            if not bool(grad_window.any()):
                continue
            grad_crop = torch.zeros(height, width, 4, device=grad_image.device)  # none for alpha
            grad_crop[..., :3] = grad_window
            if done and fresh:
                for j, variable in zip(
                    fresh, target.set([keys[j] for j in fresh], [values[j] for j in fresh], [True] * len(fresh))
                ):
                    earlier[j].append(inputs[j])
                    inputs[j] = variable
                ctx.token = target.token
            _prepare(target, view)
            integrator.render_backward(
                target.scene, target.params, mi.TensorXf(grad_crop), sensor=view.sensor, seed=view.seed + 1_000_003
            )
            done += 1
        grads = []
        for j, (value, need) in enumerate(zip(values, wanted)):
            if need:
                total = dr.grad(inputs[j])
                for variable in earlier.get(j, ()):
                    total = total + dr.grad(variable)  # summed by Dr.Jit: one conversion per input
                grads.append(total.torch().reshape(value.shape).to(value))
            else:
                grads.append(None)
        ctx.launch = (target, views, keys, inputs)  # what the scene holds now, for a second backward
        return (None,) * 3 + tuple(grads)


def launch(
    target: MitsubaScene, views: Sequence[View], updates: dict
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Render ``views`` of ``target`` with the parameter ``updates`` (key -> tensor) set once, as a
    differentiable torch op: per view an (H, W, 3) image (its background outside the window) and
    the (H, W) coverage of its samples (not differentiable)."""
    outputs = _Views.apply(target, tuple(views), tuple(updates), *updates.values())
    return outputs[: len(views)], outputs[len(views) :]


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
