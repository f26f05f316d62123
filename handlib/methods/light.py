"""The light under which the hand's skin is one colour in every frame: DMVR's SH light estimated
again at the refined hand, the albedo eliminated in closed form (a departure from the paper; see the
book's Differences page).

A diffuse hand under an SH light shows, at a texel seen in frame t by camera c (linear, the
camera's colour transform undone), ``i = a s_t``: its albedo ``a`` times its shading
``s_t = sum_k y_k b_tk``, linear in the light's coefficients ``y`` (``b_tk``: what the texel shows,
white, under the k-th basis light, shadows included: a render). Every camera of a frame sees the same
shading, so a free albedo explains any one frame under any light; the light shows only in how a
texel's shading changes from frame to frame as the hand turns and bends, and in the shadows. Per
texel and channel the best albedo is closed form, ``a = sum w i s / sum w s^2`` (``w`` the view
weight), and what it leaves,

    r(y) = sum w i^2 - (sum w i s)^2 / sum w s^2,

needs only each texel's sums ``sum w i^2``, ``sum w i b_k``, ``sum w b_k b_l`` over frames and
cameras (:class:`ShadingSums`). The light minimises ``r`` summed over the texels (variable
projection: the albedo is eliminated). Band 0 is held, the albedo takes the light's overall
brightness (and, per channel, its colour): with ``gauge="grey"`` the other coefficients are one
value for R, G and B (3 numbers for 2 bands), with ``"free"`` one per channel (9).

Why: DMVR's optimiser moves the light and a texture that starts as the observations under a uniform
light, shading baked in; that texture explains every frame nearly as well as the true albedo would,
and the light it leaves is flatter than the truth and 20-70 degrees off, even at the closest model
hand (benchmarks/dmvr_albedo.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Sequence

import numpy as np
import torch
from scipy.optimize import minimize

from handlib.geometry.cameras import Camera
from handlib.geometry.surface import HandSurface
from handlib.methods.together import occluders
from handlib.rendering import lighting
from handlib.rendering.backproject import SHADOW_WEIGHT, inside_outline, texel_samples
from handlib.rendering.colour import srgb_decode, undo_colour_transform
from handlib.rendering.renderer import Renderer, RenderSettings
from handlib.rendering.scene import Layout

if TYPE_CHECKING:
    import mitsuba as mi

#: Each basis light is the uniform white one plus this much of one SH coefficient: small enough that
#: no direction's radiance goes negative (which the renderer would clamp, breaking linearity) for
#: up to 3 bands (|Y_lm| <= 1.1), large enough to stand out of the renders' noise.
BASIS_STEP = 0.5
#: Band 0 of the uniform white light (radiance 1), the first basis light.
WHITE_BAND0 = float(lighting.uniform(1.0, 1)[0, 0])
#: The atlas the sums are taken on: ~20k texels on a hand, plenty for 3-9 numbers.
ATLAS_SIZE = 256
#: The fit is robust to texels the refined hand misplaces (a texel whose samples are different skin,
#: or background, in different frames is not explained by any light): after a first fit, each
#: texel is weighted by 1 / (1 + (r / (ROBUST_SCALE m))^2), r what its best albedo leaves over what
#: it shows and m that share's median over the texels (Cauchy), and the light fitted again,
#: REWEIGHTINGS times. Chosen on three development videos (benchmarks/dmvr_albedo.py's CASES, one
#: DMVR run each from 10 mm, 3.3-4.6 mm after): the light's direction error 8.1 / 41.7 / 15.2 degrees
#: without, 6.2 / 21.3 / 14.8 with (the optimiser's: 33.6 / 23.3 / 25.6); at the closest model hands
#: 2.4 / 6.6 / 8.8 without and 6.3 / 1.9 / 9.7 with.
ROBUST_SCALE, REWEIGHTINGS = 3.0, 3
#: Directions on which a candidate light's radiance must be non-negative.
_CHECK_DIRECTIONS = 2000


@dataclass
class ShadingSums:
    """Per texel some camera saw (N) and channel: ``ii`` (N, 3) = sum w i^2, ``ib`` (N, 3, K) =
    sum w i b_k and ``bb`` (N, 3, K, K) = sum w b_k b_l, over every frame and camera that saw it
    (K: the light's coefficients per channel, band 0 first)."""

    ii: np.ndarray
    ib: np.ndarray
    bb: np.ndarray

    def texel_residuals(self, light: np.ndarray, channels: Sequence[int] = (0, 1, 2)) -> np.ndarray:
        """(N,) what each texel's best albedo leaves, summed over ``channels``, under the SH ``light``
        (K, 3) (the albedo takes each channel's scale, so only the light's shape counts)."""
        channels = list(channels)  # a tuple would index several axes
        y = np.array(light, dtype=np.float64).T[channels]  # (channels, K): the basis shadings' weights
        y[:, 0] /= WHITE_BAND0  # the first basis shading is the white light's whole
        ii, ib, bb = self.ii[:, channels], self.ib[:, channels], self.bb[:, channels]
        explained = np.einsum("nck,ck->nc", ib, y) ** 2
        shading = np.einsum("nckl,ck,cl->nc", bb, y, y)
        return (ii - explained / np.maximum(shading, 1e-300)).sum(1)

    def residual(self, light: np.ndarray, channels: Sequence[int] = (0, 1, 2)) -> float:
        """:meth:`texel_residuals` summed over the texels."""
        return float(self.texel_residuals(light, channels).sum())

    def weighted(self, weights: np.ndarray) -> "ShadingSums":
        """The sums with each texel's samples weighted by ``weights`` (N,)."""
        w = np.asarray(weights, dtype=np.float64)[:, None]
        return ShadingSums(self.ii * w, self.ib * w[..., None], self.bb * w[..., None, None])


class FrameInputs(NamedTuple):
    """What DMVR's closed forms (this light, :func:`handlib.methods.dmvr.demodulated_albedo`) take
    from one frame, per camera: the observed image (sRGB-encoded), the same linear with the camera's
    colour transform undone, the pixels inside the rendered hands' outline (the only ones sampled);
    and the scene of the hands that hides texels from the cameras."""

    encoded: list[np.ndarray]
    linear: list[np.ndarray]
    inside: list[np.ndarray]
    scene: "mi.Scene"


def shading_renderer(
    surfaces: Sequence[HandSurface], cameras: Sequence[Camera], spp: int, layout: Layout
) -> tuple[HandSurface, Renderer]:
    """The hands as one surface, and the renderer of their shading (radiance, over black) that the
    closed forms divide the observations by."""
    together = surfaces[0] if len(surfaces) == 1 else HandSurface.together(surfaces)
    return together, Renderer(cameras, together, RenderSettings(mode="radiance", spp=spp, layout=layout))


def frame_inputs(
    together: HandSurface,
    frame: Sequence[torch.Tensor],
    observed: Sequence[torch.Tensor],
    transforms: torch.Tensor,
    alphas: Sequence[torch.Tensor],
) -> FrameInputs:
    """:class:`FrameInputs` of one frame: the hands' model vertices ``frame`` (one per hand), its
    ``observed`` images (sRGB-encoded, [0, 1]), the (C, 3, 4) colour ``transforms`` to undo and the
    coverage ``alphas`` of a render of the hands there."""
    return FrameInputs(
        [image.numpy() for image in observed],
        [undo_colour_transform(srgb_decode(image), t).numpy() for image, t in zip(observed, transforms)],
        [inside_outline(alpha.numpy()) for alpha in alphas],
        occluders(together, frame),
    )


def basis_lights(bands: int) -> list[torch.Tensor]:
    """The uniform white light, then it plus ``BASIS_STEP`` of each further SH coefficient."""
    white = lighting.uniform(1.0, bands)
    lights = [white]
    for k in range(1, lighting.num_coefficients(bands)):
        light = white.clone()
        light[k] += BASIS_STEP
        lights.append(light)
    return lights


def shading_sums(
    surfaces: Sequence[HandSurface],
    cameras: Sequence[Camera],
    observed: Sequence[Sequence[torch.Tensor]],
    vertices: Sequence[Sequence[torch.Tensor]],
    transforms: torch.Tensor,
    backgrounds: Sequence[torch.Tensor],
    bands: int = lighting.DEFAULT_BANDS,
    spp: int = 256,
    layout: Layout = "shared",
    size: int = ATLAS_SIZE,
    seed: int = 0,
) -> ShadingSums:
    """The sums of every hand's texels (hands one after the other) over the frames: ``observed[t][c]``
    (sRGB-encoded, [0, 1]) of frame t in camera c, ``vertices[t][k]`` hand k's model vertices, the
    (C, 3, 4) colour ``transforms`` to undo and each camera's (encoded) background colour. The basis
    shadings are renders of the hands (white albedo) under :func:`basis_lights` at ``spp`` samples
    with the same random numbers, so that their differences keep little of the noise. The samples
    are those of DMVR's closed-form albedo (inside the rendered outline, not the background)."""
    together, renderer = shading_renderer(surfaces, cameras, spp, layout)
    lights = basis_lights(bands)
    white = torch.ones(4, 4, 3)
    sums = [None] * len(surfaces)
    for t, (row, frame) in enumerate(zip(observed, vertices)):
        with torch.no_grad():
            renders = [renderer.render(torch.cat(frame), white, light, seed=seed + t) for light in lights]
        plain = [image.double().numpy() for image in renders[0].images]
        # per camera (H, W, 3, K): the shading under white, then per coefficient the change per unit
        basis = [
            np.stack([plain[c]] + [(r.images[c].double().numpy() - plain[c]) / BASIS_STEP for r in renders[1:]], -1)
            for c in range(len(cameras))
        ]
        inputs = frame_inputs(together, frame, row, transforms, renders[0].alphas)
        for k, hand_surface in enumerate(surfaces):
            samples = texel_samples(
                hand_surface,
                frame[k],
                cameras,
                inputs.encoded,
                size,
                backgrounds,
                inputs.scene,
                masks=inputs.inside,
                hand_like=True,
            )
            count, K = samples.count, len(lights)
            if sums[k] is None:
                sums[k] = [np.zeros((count, 3)), np.zeros((count, 3, K)), np.zeros((count, 3, K, K))]
            ii, ib, bb = sums[k]
            for c, (index, _, view) in enumerate(samples.views):
                i = samples.sample(c, inputs.linear[c])  # (n, 3)
                b = samples.sample(c, basis[c].reshape(*basis[c].shape[:2], -1)).reshape(len(index), 3, K)
                w = view[:, None]
                ii[index] += w * i * i
                ib[index] += w[..., None] * i[..., None] * b
                bb[index] += w[..., None, None] * b[..., :, None] * b[..., None, :]
    kept = [bb[:, :, 0, 0].min(1) > SHADOW_WEIGHT for _, _, bb in sums]  # seen, and not only in deep shadow
    return ShadingSums(*(np.concatenate([hand[j][seen] for hand, seen in zip(sums, kept)]) for j in range(3)))


def consistent_light(
    sums: ShadingSums, start: torch.Tensor, gauge: str = "grey", reweightings: int = REWEIGHTINGS
) -> torch.Tensor:
    """The (K, 3) SH light that minimises what the best albedo leaves (:meth:`ShadingSums.residual`),
    its band 0 held at ``start``'s (say, the optimiser's light; the albedo takes its scale), and its
    other coefficients one value for R, G and B (``gauge="grey"``) or one per channel (``"free"``:
    the channels' residuals are apart, each is minimised alone). Nelder-Mead from ``start`` and from
    a uniform light, the better kept; no direction's radiance may be negative. Then ``reweightings``
    times again, each texel weighted by how well the last light explains it (:data:`ROBUST_SCALE`)."""
    if gauge not in ("grey", "free"):
        raise ValueError(f"gauge must be 'grey' or 'free', got {gauge!r}.")
    start = torch.as_tensor(start, dtype=torch.float64)
    bands = lighting.bands_of(start)
    if sums.ib.shape[-1] != lighting.num_coefficients(bands):
        raise ValueError(f"the sums have {sums.ib.shape[-1]} coefficients per channel; the light {len(start)}.")
    if len(sums.ii) == 0:
        raise ValueError("no texel was seen in deep enough light to estimate the light from.")
    band0 = start[0].numpy()
    if not (band0 > 0).all():
        raise ValueError(f"the start light's band 0 must be positive in every channel, got {band0}.")
    # (K-1, 3): per channel, the coefficients beyond band 0 with band 0 scaled to white's
    relative = (start[1:] / start[0] * WHITE_BAND0).numpy()
    directions = torch.nn.functional.normalize(
        torch.randn(_CHECK_DIRECTIONS, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64), dim=1
    )
    basis = lighting.sh_basis(directions, bands).numpy()  # (D, K)

    def light_of(x: np.ndarray) -> np.ndarray:
        """(K, 3): band 0 white's, the rest ``x`` (K-1, 3)."""
        return np.concatenate([np.full((1, 3), WHITE_BAND0), x])

    def fit(sums: ShadingSums, guess: np.ndarray) -> np.ndarray:
        found = np.empty_like(relative)
        for channels in [[0, 1, 2]] if gauge == "grey" else [[0], [1], [2]]:

            def cost(x: np.ndarray, channels: list[int] = channels) -> float:
                if (basis[:, 0] * WHITE_BAND0 + basis[:, 1:] @ x).min() < 0:
                    return np.inf  # some direction's radiance would be negative
                return sums.residual(light_of(np.repeat(x[:, None], 3, 1)), channels)

            best = None
            for x0 in (guess[:, channels].mean(1), np.zeros(len(guess))):
                if np.isfinite(cost(x0)):
                    result = minimize(
                        cost, x0, method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-9, "maxiter": 4000}
                    )
                    best = result if best is None or result.fun < best.fun else best
            found[:, channels] = best.x[:, None]
        return found

    found = fit(sums, relative)
    total = sums.ii.sum(1)
    for _ in range(reweightings):
        share = sums.texel_residuals(light_of(found)) / np.maximum(total, 1e-300)  # what is left, relative
        scale = ROBUST_SCALE * max(float(np.median(share)), 1e-12)
        found = fit(sums.weighted(1.0 / (1.0 + (share / scale) ** 2)), found)
    light = light_of(found) / WHITE_BAND0 * band0[None]  # each channel's band 0 back to the start's
    return torch.as_tensor(light, dtype=torch.float32)
