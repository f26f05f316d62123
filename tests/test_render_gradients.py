"""Ray-traced gradients against central finite differences, on tiny scenes.

The losses are fixed smooth weightings of the images, so their derivatives mix
silhouette, occlusion and interior terms. Finite differences use the same seeds on
both sides (common random numbers); gradients average a few seeds.
"""

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np
import pytest
import torch

from handlib.geometry.cameras import dome_cameras
from handlib.geometry.surface import HandSurface
from handlib.model.hand import HandParams
from handlib.rendering import lighting
from handlib.rendering.renderer import Renderer, RenderSettings
from handlib.rendering.texture import bake_vertex_colours

pytestmark = pytest.mark.slow

#: Relative tolerance of a gradient against its finite difference, from the spread of
#: |g - fd| / |fd| over 8 seed sets (`benchmarks/test_margins.py`, `test_margins.csv`; a run with
#: fixed seeds varies less, Dr.Jit's sums being the only difference). Reflectance: worst check
#: shape, 0.017 +- 0.011 (translation 0.018 +- 0.006, texels 0.003 +- 0.002): 0.08 is >= 5.8 sd
#: above every mean. Radiance (the environment is sampled too): worst translation along x,
#: 0.093 +- 0.019 (y 0.035 +- 0.015, z 0.034 +- 0.010, SH 0.007 +- 0.005): 0.2 is >= 5.8 sd above.
#: Over coloured backgrounds (2026-12-03): reflectance x 0.025 +- 0.008, radiance z 0.062 +- 0.019,
#: both 7.3 sd below their bound.
TOLERANCE = {"reflectance": 0.08, "radiance": 0.2}
GRADIENT_SEEDS = (11, 12, 13)
DIFFERENCE_SEEDS = tuple(range(100, 108))  # finite differences are the noisier estimate


@pytest.fixture(scope="module", params=["shared", "film"])
def setup(right_flat, request):
    return make_setup(right_flat, request.param)


def make_setup(right_flat, layout: str = "film"):
    """The scene every gradient check shares: a posed hand, two cameras, smooth image weights.
    ``film``: fy 1.6% off fx, so each camera is rendered in its own film space; ``shared``: fy/fx
    as InterHand2.6M's, so both share the world scene."""
    params = HandParams.create(1, hand_pose=torch.full((1, 45), 0.1))
    vertices = right_flat(params).vertices[0].detach()
    focal = {"film": (310.0, 305.0), "shared": (310.0, 310.0)}[layout]
    cameras = dome_cameras(2, vertices.mean(0).numpy(), size=(84, 128), focal=focal, jitter_px=6.0, seed=5)
    weights = []
    for index, camera in enumerate(cameras):
        rows, cols = np.mgrid[0 : camera.height, 0 : camera.width]
        ramp = 1.0 + 2.0 * cols / camera.width + rows / camera.height
        ripple = np.stack(
            [
                1.0
                + 0.3 * np.sin(2 * math.pi * (cols / camera.width * 1.3 + rows / camera.height * 0.7) + phase + index)
                for phase in (0.0, 2.0, 4.0)
            ],
            -1,
        )
        weights.append(torch.tensor(ramp[..., None] * ripple, dtype=torch.float32))
    # A colour that varies smoothly over the hand, baked into its atlas: no seams, so every
    # image discontinuity is a geometric edge (the only kind projective sampling handles).
    surface = HandSurface.of(right_flat)
    position = surface.close(vertices).numpy()
    texture = bake_vertex_colours(surface, 0.55 + 0.25 * np.sin(position / 20.0 + np.array([0.0, 2.0, 4.0])), 128)
    light = lighting.uniform(0.9)
    light[1:4] = torch.tensor([[0.3, 0.2, 0.1], [0.2, 0.3, 0.1], [0.1, 0.2, 0.3]])
    return surface, params, vertices, cameras, weights, texture, light


def objective(renderer, weights, seed, **inputs):
    rendered = renderer.render(seed=seed, **inputs)
    return sum((w * image).sum() for w, image in zip(weights, rendered.images))


def check(gradient, finite_difference, mode="reflectance"):
    print(
        f"gradient {gradient:.4g}, finite difference {finite_difference:.4g}, "
        f"relative error {abs(gradient - finite_difference) / abs(finite_difference):.3f}"
    )
    assert math.copysign(1, gradient) == math.copysign(1, finite_difference), (gradient, finite_difference)
    assert abs(gradient - finite_difference) <= TOLERANCE[mode] * abs(finite_difference), (gradient, finite_difference)


@dataclass
class Check:
    """One gradient check: d objective / d s at s = 0 for ``inputs(s)`` rendered by ``renderer``."""

    renderer: Renderer
    inputs: Callable[[torch.Tensor], dict]
    weights: list
    step: float
    mode: str = "reflectance"


def gradient_and_fd(case: Check, seed_offset: int = 0) -> tuple[float, float]:
    """d objective / d s at s = 0, by autograd and by central differences; ``seed_offset`` shifts
    every Monte Carlo seed (``benchmarks/test_margins.py`` measures the spread over offsets)."""
    gradient = 0.0
    for seed in GRADIENT_SEEDS:
        s = torch.zeros((), requires_grad=True)
        value = objective(case.renderer, case.weights, seed + seed_offset, **case.inputs(s))
        gradient += torch.autograd.grad(value, s)[0].item() / len(GRADIENT_SEEDS)
    fd = 0.0
    with torch.no_grad():
        for seed in DIFFERENCE_SEEDS:
            plus = objective(case.renderer, case.weights, seed + seed_offset, **case.inputs(torch.tensor(case.step)))
            minus = objective(case.renderer, case.weights, seed + seed_offset, **case.inputs(torch.tensor(-case.step)))
            fd += (plus - minus).item() / (2 * case.step) / len(DIFFERENCE_SEEDS)
    return gradient, fd


#: Colour backgrounds, one per camera: the silhouette gradient is then the difference between hand
#: and background, whichever way the background is rendered. Darker than the hand, so that the
#: difference keeps about two thirds of the gradient over black (x: 21.4 against 32.8 by finite
#: differences): a renderer that ignored the background would be about 1.5x off, while a brighter
#: one (0.5 grey) cancels it down to a tenth, where the silhouette's few-percent Monte Carlo error
#: is as large as the tolerance.
BACKGROUNDS = [(0.05, 0.2, 0.35), (0.3, 0.1, 0.02)]


def translation_check(setup, right_flat, mode: str, axis: int, backdrop: str | None = None) -> Check:
    """Translation along ``axis``; over black, or over :data:`BACKGROUNDS` rendered by ``backdrop``."""
    surface, _, vertices, cameras, weights, texture, light = setup
    settings = RenderSettings(
        mode=mode, spp=32 if mode == "reflectance" else 64, silhouette_spp=4, backdrop=backdrop or "traced"
    )
    renderer = Renderer(cameras, surface, settings)
    direction = torch.eye(3)[axis]
    # Weight each image by a zero-mean ramp along the direction the axis moves the hand in
    # it: the views' responses add up instead of cancelling, and the weights are near zero
    # where the hand is, which keeps the Monte Carlo noise small next to the response.
    centre = vertices.mean(0).double()
    axis_weights = []
    for camera, weight in zip(cameras, weights):
        (start, end), _ = camera.project(torch.stack([centre, centre + direction.double()]))
        motion = (end - start) / (end - start).norm()
        rows, cols = torch.meshgrid(torch.arange(camera.height), torch.arange(camera.width), indexing="ij")
        along = (cols - start[0]) * motion[0] + (rows - start[1]) * motion[1]
        axis_weights.append(weight * (along / camera.width)[..., None].to(torch.float32))
    weights = axis_weights

    def inputs(s):
        backgrounds = None if backdrop is None else BACKGROUNDS
        return {"vertices": vertices + s * direction, "texture": texture, "light": light, "backgrounds": backgrounds}

    # 2 mm: at 1 mm the finite difference's seed-to-seed spread was +-25% (the gradient's 4%).
    return Check(renderer, inputs, weights, 2.0, mode)


def shape_check(setup, right_flat) -> Check:
    surface, params, _, cameras, weights, texture, light = setup
    renderer = Renderer(cameras, surface, RenderSettings(spp=32))

    def inputs(s):
        betas = torch.zeros(1, 10)
        betas = betas + s * torch.eye(10)[0]
        shaped = HandParams(params.global_orient, params.hand_pose, betas, params.transl)
        return {"vertices": right_flat(shaped).vertices[0], "texture": texture}

    return Check(renderer, inputs, weights, 0.2)


def texel_check(setup, right_flat) -> Check:
    surface, _, vertices, cameras, weights, texture, light = setup
    renderer = Renderer(cameras, surface, RenderSettings(spp=32))
    # A 16x16-texel block of the atlas around the UV of the back of the hand (the first
    # triangle's first corner lies inside an island, whatever the atlas layout).
    u, v = surface.uv_corners[0, 0].tolist()
    row, col = int(v * texture.shape[0]), int(u * texture.shape[1])
    region = torch.zeros_like(texture)
    region[max(row - 8, 0) : row + 8, max(col - 8, 0) : col + 8] = 1.0

    def inputs(s):
        return {"vertices": vertices, "texture": texture + s * region}

    return Check(renderer, inputs, weights, 0.1)


def sh_check(setup, right_flat, coefficient: int) -> Check:
    surface, _, vertices, cameras, weights, texture, light = setup
    renderer = Renderer(cameras, surface, RenderSettings(mode="radiance", spp=32))
    direction = torch.zeros_like(light)
    direction[coefficient, 1] = 1.0

    def inputs(s):
        return {"vertices": vertices, "texture": texture, "light": light + s * direction}

    return Check(renderer, inputs, weights, 0.1, "radiance")


#: Every check by name, for the tests below and for the spread measurement.
CHECKS = {
    **{
        f"translation-{m}-{a}": partial(translation_check, mode=m, axis=a)
        for m in ("reflectance", "radiance")
        for a in (0, 1, 2)
    },
    **{
        f"translation-{m}-{a}-background": partial(translation_check, mode=m, axis=a, backdrop="traced")
        for m, a in (("reflectance", 0), ("radiance", 2))
    },
    "shape": shape_check,
    "texel-region": texel_check,
    **{f"sh-{c}": partial(sh_check, coefficient=c) for c in (0, 2)},
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_gradient_matches_finite_differences(setup, right_flat, name):
    case = CHECKS[name](setup, right_flat)
    check(*gradient_and_fd(case), case.mode)


@pytest.mark.parametrize("mode", ["reflectance", "radiance"])
def test_traced_background_gives_the_composite_gradient(setup, right_flat, mode):
    """The same samples give the same image and gradient whether a colour background is seen by
    the camera rays that miss the hand (one render) or composited with a coverage render (two)."""
    results = []
    for backdrop in ("traced", "composite"):
        case = translation_check(setup, right_flat, mode, 0, backdrop)
        s = torch.zeros((), requires_grad=True)
        value = objective(case.renderer, case.weights, GRADIENT_SEEDS[0], **case.inputs(s))
        results.append((value.item(), torch.autograd.grad(value, s)[0].item()))
    (traced_value, traced), (composite_value, composite) = results
    assert traced_value == pytest.approx(composite_value, rel=1e-5)
    assert traced == pytest.approx(composite, rel=1e-4), (traced, composite)


def test_raster_misses_the_silhouette_gradient_that_the_ray_tracer_has(setup):
    """SMVR 4.2.2's argument: a uniformly coloured hand on a uniform background, moved
    sideways, changes the images only at its silhouette. A hard rasteriser sees no
    gradient there; the ray tracer sees the one finite differences measure."""
    surface, _, vertices, cameras, _, _, _ = setup
    camera = cameras[0]
    ramp = torch.arange(camera.width, dtype=torch.float32)[None, :, None].expand(camera.height, camera.width, 3)
    sideways = torch.tensor(camera.camrot[0], dtype=torch.float32)  # the image's x axis, in the world
    texture = torch.full((4, 4, 3), 0.8)
    results = {}
    for generator in ("raytrace", "raster"):
        renderer = Renderer([camera], surface, RenderSettings(generator=generator, spp=32, silhouette_spp=4))

        def inputs(s):
            return {"vertices": vertices + s * sideways, "texture": texture, "backgrounds": [(0.2, 0.2, 0.2)]}

        results[generator] = gradient_and_fd(Check(renderer, inputs, [ramp], 2.0))
    traced, fd = results["raytrace"]
    rastered, raster_fd = results["raster"]
    check(traced, fd)
    assert abs(raster_fd - fd) < 0.15 * abs(fd)  # both images move alike...
    assert abs(rastered) < 0.02 * abs(fd)  # ...but the rasteriser's gradient does not see it
