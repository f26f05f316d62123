"""Synthetic refinement studies: a frame made to order, refined, measured as one table row.

The papers' experiments (noise sweeps, image generators, camera counts) are loops over
cases. A :class:`Case` names what is synthesised (gesture, subject, initial error,
occluders); :func:`make_problem` writes it as an InterHand2.6M-layout capture and reads it
back through :class:`~handlib.data.interhand.InterHandReader`, exactly as a real capture is
read; :func:`refine_problem` runs SMVR and returns a flat record (the tidy row the
notebooks collect into tables and draw figures from).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from handlib.data.interhand import InterHandReader, load_json
from handlib.data.mismatch import Mismatch
from handlib.data.realism import IDEAL, Realism
from handlib.data.synth import SynthSettings, read_truths, synthesize
from handlib.geometry.cameras import Camera
from handlib.geometry.surface import HandSurface
from handlib.methods import metrics
from handlib.methods.schedule import best_entry
from handlib.methods.smvr import SMVRResult, SMVRSettings, refine_frame
from handlib.model.hand import HandModel, HandParams, Truth, as_truth
from handlib.rendering.backproject import surface_scene, visible_points


@dataclass(frozen=True)
class Case:
    """One synthetic refinement problem. ``subject`` seeds the hand's shape and skin, the rig's
    jitter and the noise draw; ``occluded`` is the fraction of views with a bar in front."""

    gesture: str
    subject: int
    noise_mm: float = 5.0
    occluded: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.gesture}_s{self.subject}_n{self.noise_mm:g}_o{self.occluded:g}"


#: The synthetic benchmarks: a true hand outside the model in degraded images, or a model hand in perfect ones.
BENCHMARKS = ("realistic", "ideal")


@dataclass(frozen=True)
class Scale:
    """Size and conditions of the synthetic capture: cameras, image size (InterHand2.6M's 334x512
    / shrink), samples per pixel of the 'observed' images, texture size of the true skin, the
    key light's strength (shadows) and the spread of the cameras' colour responses."""

    cameras: int = 8
    shrink: int = 4
    spp: int = 16
    texture_size: int = 512
    directional_light: float = 0.0
    colour_response: float = 0.0
    # The realistic benchmark (see handlib.data.mismatch and handlib.data.realism); None / IDEAL:
    # the idealised capture, a hand of the fitted model in perfect images.
    mismatch: Mismatch | None = None
    realism: Realism = IDEAL

    @property
    def benchmark(self) -> str:
        """'realistic' when the truth lies outside the model or the images are degraded, else 'ideal'."""
        return "ideal" if self.mismatch is None and self.realism == IDEAL else "realistic"

    def realistic(self) -> "Scale":
        """This scale on the realistic benchmark (the defaults of Mismatch and Realism)."""
        return replace(self, mismatch=Mismatch(), realism=Realism())

    def on(self, benchmark: str) -> "Scale":
        """This scale on the named benchmark: 'realistic' (the experiments' default) or 'ideal'."""
        if benchmark not in BENCHMARKS:
            raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {benchmark!r}.")
        if benchmark == "ideal":
            return replace(self, mismatch=None, realism=IDEAL)
        return self.realistic()


@dataclass
class Problem:
    """What a refinement gets (cameras, images, initial MANO, noisy target joints) and the truth."""

    case: Case
    model: HandModel
    cameras: list[Camera]
    images: list[np.ndarray]
    initial: HandParams
    joints: torch.Tensor  # (21, 3) mm, noisy
    joint_valid: torch.Tensor
    truth: Truth  # the true surface at the model's vertices, the true joints, the floor
    benchmark: str = "ideal"  # which synthetic benchmark (see Scale.benchmark)


def synth_settings(
    case: Case, scale: Scale, gestures: tuple[str, ...], frames: int = 1, motion: tuple[float, float] = (0.0, 1.0)
) -> SynthSettings:
    """The synthetic capture of ``case`` (its noise, subject, occlusion) at ``scale``."""
    return SynthSettings(
        cameras=scale.cameras,
        gestures=gestures,
        frames=frames,
        motion=motion,
        noise_mm=case.noise_mm,
        seed=case.subject,
        spp=scale.spp,
        texture_size=scale.texture_size,
        shrink=scale.shrink,
        occluded_views=case.occluded,
        directional_light=scale.directional_light,
        colour_response=scale.colour_response,
        mismatch=scale.mismatch,
        realism=scale.realism,
    )


def make_problem(root: str | Path, case: Case, scale: Scale = Scale()) -> Problem:
    """Synthesise ``case`` under ``root`` (one frame, right hand) and load it as a refinement would."""
    out = Path(root) / f"{case.key}_{abs(hash(scale)) % 10**8}"
    if not (out / "ground_truth" / "scene.json").is_file():
        synthesize(
            out,
            synth_settings(case, scale, gestures=(case.gesture,)),
            progress=False,
        )
    frame = next(iter(InterHandReader(out, "test")))
    cameras = [frame.cameras[name] for name in sorted(frame.cameras)]
    return Problem(
        case,
        HandModel("right"),
        cameras,
        [frame.image(c.name) for c in cameras],
        frame.hand_params("right"),
        torch.tensor(frame.joints[:21]),
        torch.tensor(frame.joint_valid[:21]),
        read_truths(out)[(frame.capture, frame.frame, "right")],
        scale.benchmark,
    )


@dataclass
class SequenceProblem:
    """A synthetic video: ``images[t][c]``, per-frame initial MANO, frame numbers, and the truth."""

    case: Case
    frames: int
    model: HandModel
    cameras: list[Camera]
    images: list[list[np.ndarray]]
    initial: list[HandParams]
    times: list[int]
    truth: list[Truth]
    true_texture: np.ndarray  # (S, S, 3) linear albedo of the subject's skin
    true_light: np.ndarray | None = None  # (bands^2, 3) SH coefficients of the capture's light
    benchmark: str = "ideal"  # which synthetic benchmark (see Scale.benchmark)
    closest: list[HandParams] | None = None  # per frame, the model's hand closest to the truth (the floor's)
    colour_responses: np.ndarray | None = None  # (C, 3, 4) each camera's true colour transform


def make_sequence_problem(
    root: str | Path,
    case: Case,
    frames: int,
    scale: Scale = Scale(),
    gestures: tuple[str, ...] | None = None,
    motion: tuple[float, float] = (0.0, 1.0),
) -> SequenceProblem:
    """Synthesise a ``frames``-frame video moving from ``case.gesture`` through ``gestures`` (default:
    to a fist, or to an open hand from a fist), or the ``motion`` stretch of that path (see
    :class:`~handlib.data.synth.SynthSettings`), and load it as a video refinement would."""
    gestures = gestures or ((case.gesture, "open") if case.gesture == "fist" else (case.gesture, "fist"))
    stretch = "" if motion == (0.0, 1.0) else f"_m{motion[0]:.3f}-{motion[1]:.3f}"
    out = Path(root) / f"{case.key}_t{frames}{stretch}_{'_'.join(gestures)}_{abs(hash(scale)) % 10**8}"
    if not (out / "ground_truth" / "scene.json").is_file():
        synthesize(
            out,
            synth_settings(case, scale, gestures=gestures, frames=frames, motion=motion),
            progress=False,
        )
    reader = InterHandReader(out, "test")
    video = sorted(reader, key=lambda frame: frame.frame)
    truths = read_truths(out)
    cameras = [video[0].cameras[name] for name in sorted(video[0].cameras)]
    texture = np.load(out / "ground_truth" / "textures" / "capture0.npy").astype(np.float32)
    scene = load_json(out / "ground_truth" / "scene.json")
    closest = load_json(out / "ground_truth" / "MANO_NeuralAnnot.json")
    return SequenceProblem(
        case,
        frames,
        HandModel("right"),
        cameras,
        [[frame.image(c.name) for c in cameras] for frame in video],
        [frame.hand_params("right") for frame in video],
        [frame.frame for frame in video],
        [truths[(f.capture, f.frame, "right")] for f in video],
        texture,
        np.asarray(scene["light_sh"], dtype=np.float64),
        scale.benchmark,
        [HandParams.from_interhand(closest[str(f.capture)][str(f.frame)]["right"]) for f in video],
        None  # a capture written before the responses were recorded
        if "colour_response" not in scene
        else np.asarray([scene["colour_response"][c.name] for c in cameras], dtype=np.float64),
    )


def geometry_errors(model: HandModel, params: HandParams, truth: Truth | HandParams) -> tuple[float, float]:
    """(eps_v, eps_j) in mm of ``params`` against ``truth``."""
    with torch.no_grad():
        return metrics.errors_against(model(params), as_truth(model, truth))


def finger_errors(
    model: HandModel, params: Sequence[HandParams], truths: Sequence[Truth | HandParams]
) -> list[dict[str, float]]:
    """Per frame, the joints' error (mm) of ``params[t]`` against ``truths[t]`` by finger and at
    the wrist (:func:`handlib.methods.metrics.finger_errors`)."""
    with torch.no_grad():
        return [
            metrics.finger_errors(model(p).joints21[0], as_truth(model, t).joints21) for p, t in zip(params, truths)
        ]


def refine_problem(
    problem: Problem, settings: SMVRSettings = SMVRSettings(), camera_names: Sequence[str] | None = None
) -> tuple[dict, SMVRResult]:
    """Refine ``problem`` with SMVR (on a subset of its cameras if named); the tidy record and the result."""
    chosen = _subset(problem, camera_names)
    result = refine_frame(
        problem.model,
        [problem.cameras[k] for k in chosen],
        [problem.images[k] for k in chosen],
        problem.initial,
        problem.joints,
        problem.joint_valid,
        settings,
        truth=problem.truth,
    )
    eps_v0, eps_j0 = geometry_errors(problem.model, problem.initial, problem.truth)
    eps_v, eps_j = geometry_errors(problem.model, result.params, problem.truth)
    first, last = result.history[0], best_entry(result.history, result.best_iteration)
    record = {
        **asdict(problem.case),
        "case": problem.case.key,
        "benchmark": problem.benchmark,
        "cameras": len(chosen),
        "loss": settings.loss,
        "generator": settings.generator,
        "eps_v_before": eps_v0,
        "eps_v_after": eps_v,
        "eps_v_floor": problem.truth.floor,
        "eps_j_before": eps_j0,
        "eps_j_after": eps_j,
        "backprojection_before": first["backprojection"],
        "backprojection_after": last["backprojection"],
        "iterations": len(result.history),
        "diverged": result.diverged,
        "seconds": result.seconds,
    }
    return record, result


def face_samples(surface: HandSurface, vertices: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroids (F, 3), unit normals and areas (mm^2) of the model's own faces (not the wrist cap)."""
    v = np.asarray(vertices.detach(), dtype=np.float64)
    faces = surface.faces.numpy()
    faces = faces[(faces < surface.num_model_vertices).all(1)]
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    cross = np.cross(b - a, c - a)
    area = np.linalg.norm(cross, axis=1) / 2
    return (a + b + c) / 3, cross / np.maximum(2 * area, 1e-12)[:, None], area


def greedy_camera_order(
    model: HandModel, params: HandParams, cameras: Sequence[Camera], min_facing: float = 0.2
) -> tuple[list[str], list[float]]:
    """SMVR's equation 6: order cameras so that each next one adds the most newly visible hand
    surface. Returns the camera names in that order and comp(C_1..i), the fraction of the
    hand's area seen by at least one of the first i cameras."""
    surface = HandSurface.of(model)
    with torch.no_grad():
        vertices = model(params).vertices[0].double()
    closed = surface.close(vertices)
    points, normals, area = face_samples(surface, vertices)
    scene = surface_scene(surface, closed)
    seen_by = {c.name: visible_points(scene, c, points, normals, min_facing)[0] for c in cameras}
    order, coverage, seen = [], [], np.zeros(len(points), bool)
    remaining = dict(seen_by)
    while remaining:
        name = max(remaining, key=lambda n: (area[remaining[n] & ~seen].sum(), n))
        seen |= remaining.pop(name)
        order.append(name)
        coverage.append(float(area[seen].sum() / area.sum()))
    return order, coverage


def _subset(problem, camera_names: Sequence[str] | None) -> list[int]:
    chosen = [k for k, c in enumerate(problem.cameras) if camera_names is None or c.name in camera_names]
    if not chosen:
        raise ValueError(f"None of the cameras {list(camera_names or [])} is in the problem.")
    return chosen


def texture_psnr(problem: SequenceProblem, texture: torch.Tensor, seen: np.ndarray | None = None) -> float:
    """Robust PSNR (dB) of a recovered (S, S, 3) linear texture against the subject's true skin,
    over the atlas texels that belong to the hand (resampled to the estimate's size), or only
    those of them in ``seen`` (S, S) (the texels some camera saw)."""
    import cv2

    from handlib.rendering.texture import rasterize_atlas

    size = texture.shape[0]
    truth = cv2.resize(problem.true_texture, (size, size), interpolation=cv2.INTER_AREA)
    surface = HandSurface.of(problem.model)
    _, covered = rasterize_atlas(surface, torch.zeros(surface.num_vertices, 1, dtype=torch.float64), size)
    mask = covered if seen is None else covered & seen
    return metrics.robust_psnr(torch.as_tensor(truth), texture.detach().float(), torch.as_tensor(mask))


def closed_form_albedo(
    problem: SequenceProblem,
    params: Sequence[HandParams],
    light,
    transforms,
    size: int,
    smoothing: float | None = None,
):
    """DMVR's closed-form albedo (:func:`handlib.methods.dmvr.demodulated_albedo`, a
    :class:`~handlib.rendering.backproject.Baked`) of the video's hand posed by ``params`` (per
    frame), under the SH ``light``, with the cameras' (C, 3, 4) colour ``transforms`` undone.
    ``smoothing``: its regulariser (default DMVRSettings.albedo_smoothing)."""
    from handlib.methods.dmvr import DMVRSettings, demodulated_albedo
    from handlib.methods.observations import background_colours, observed_images
    from handlib.rendering.renderer import Renderer, RenderSettings

    surface = HandSurface.of(problem.model)
    observed = [observed_images(row, problem.cameras, t) for t, row in enumerate(problem.images)]
    with torch.no_grad():
        vertices = [[problem.model(p).vertices[0]] for p in params]
        # only the coverage is used: a reflectance render has the same as a radiance one, without a light
        coverage = Renderer(problem.cameras, surface, RenderSettings(spp=4)).render(
            vertices[0][0], torch.full((4, 4, 3), 0.5)
        )
    (baked,) = demodulated_albedo(
        [surface],
        problem.cameras,
        observed,
        vertices,
        torch.as_tensor(light, dtype=torch.float32),
        torch.as_tensor(transforms, dtype=torch.float32),
        background_colours(observed[0], coverage.alphas),
        size,
        smoothing=DMVRSettings.albedo_smoothing if smoothing is None else smoothing,
    )
    return baked


def albedo_floor(
    problem: SequenceProblem, size: int, seen: np.ndarray | None = None, smoothing: float | None = None
) -> float:
    """The albedo's floor: the robust PSNR (dB, as :func:`texture_psnr`) of DMVR's closed-form albedo
    (:func:`closed_form_albedo`) when all else is as good as the model allows: each frame's closest
    model hand, the true light and each camera's true colour response. Over the texels in ``seen``
    (S, S) when given (say, those a DMVR result saw), else over those the closed form saw. What
    limits it is what no estimate on the model's surface escapes: the images' resolution and noise,
    and a true hand that the model's surface does not follow (``benchmarks/dmvr_albedo.py --runs
    closed`` takes it apart). ``smoothing``: the closed form's regulariser (default
    DMVRSettings.albedo_smoothing)."""
    if problem.closest is None or problem.true_light is None or problem.colour_responses is None:
        raise ValueError("albedo_floor needs a synthetic capture's closest hands, light and colour responses.")
    baked = closed_form_albedo(problem, problem.closest, problem.true_light, problem.colour_responses, size, smoothing)
    return texture_psnr(problem, baked.texture.clamp(0.0, 1.0), baked.seen if seen is None else seen)


def light_direction_error(problem: SequenceProblem, light: torch.Tensor) -> float:
    """Degrees between the recovered light's dominant direction and the true light's (NaN without
    a true light)."""
    from handlib.rendering.lighting import direction_error

    if problem.true_light is None:
        return float("nan")
    return direction_error(light, problem.true_light)


@dataclass
class Relit:
    """The true and the recovered hand of one frame rendered under the same new light."""

    psnr: float  # robust PSNR (dB), mean over cameras, over the pixels both hands cover
    true: list[torch.Tensor]  # per camera (H, W, 3) sRGB-encoded, over black
    recovered: list[torch.Tensor]


#: Samples per pixel of the re-renders. At 32 both hands looked grainy (the noise, common to both,
#: is still not identical where they differ) and the score read the noise: the same misplaced hand
#: of the quick video scored 24.45 dB at 32 samples and 26.18 at 256 (1.2 s for 4 cameras).
RELIGHT_SPP = 256


def relight(
    problem: SequenceProblem, frame: int, params: HandParams, texture: torch.Tensor, light, spp: int = RELIGHT_SPP
) -> Relit:
    """Render the true hand (its surface, its skin) and the recovered one (``params``, the linear
    albedo ``texture``) of video frame ``frame`` under ``light`` (SH, (4, 3)), which neither was
    fitted under, and compare them with the robust PSNR (DMVR eq. 5) in each camera, over the
    pixels both cover: the appearance, not the outline (eps_v measures the geometry)."""
    from handlib.rendering.colour import srgb_encode
    from handlib.rendering.renderer import Renderer, RenderSettings

    renderer = Renderer(problem.cameras, HandSurface.of(problem.model), RenderSettings(mode="radiance", spp=spp))
    black = [(0.0, 0.0, 0.0)] * len(problem.cameras)
    light = torch.as_tensor(light, dtype=torch.float32)
    with torch.no_grad():
        # The same samples for both (common random numbers): where they agree, so does the noise.
        recovered = renderer.render(
            problem.model(params).vertices[0], texture.float(), light, backgrounds=black, seed=0
        )
        true = renderer.render(
            problem.truth[frame].vertices, torch.as_tensor(problem.true_texture), light, backgrounds=black, seed=0
        )
    images = ([srgb_encode(i.clamp(0, 1)) for i in r.images] for r in (true, recovered))
    true_images, recovered_images = images
    scores = [
        metrics.robust_psnr(a, b, (ma > 0.99) & (mb > 0.99))
        for a, b, ma, mb in zip(true_images, recovered_images, true.alphas, recovered.alphas)
    ]
    return Relit(float(np.mean(scores)), true_images, recovered_images)


def _mean_floor(truths: Sequence[Truth]) -> float | None:
    floors = [t.floor for t in truths]
    return None if any(f is None for f in floors) else float(np.mean(floors))


def _video_record(
    problem: SequenceProblem, method: str, cameras: int, refined: Sequence[HandParams], **measured
) -> dict:
    """The tidy record of a video refinement: geometry errors averaged over frames, plus ``measured``."""
    before = [geometry_errors(problem.model, p, t) for p, t in zip(problem.initial, problem.truth)]
    after = [geometry_errors(problem.model, p, t) for p, t in zip(refined, problem.truth)]
    return {
        **asdict(problem.case),
        "case": problem.case.key,
        "benchmark": problem.benchmark,
        "frames": problem.frames,
        "method": method,
        "cameras": cameras,
        "eps_v_before": float(np.mean([b[0] for b in before])),
        "eps_v_after": float(np.mean([a[0] for a in after])),
        "eps_v_floor": _mean_floor(problem.truth),
        "eps_j_before": float(np.mean([b[1] for b in before])),
        "eps_j_after": float(np.mean([a[1] for a in after])),
        **measured,
    }


def refine_video(problem: SequenceProblem, settings, camera_names: Sequence[str] | None = None):
    """DMVR on ``problem`` (optionally a subset of cameras): the tidy record and the result."""
    from handlib.methods.dmvr import refine_sequence

    chosen = _subset(problem, camera_names)
    result = refine_sequence(
        problem.model,
        [problem.cameras[k] for k in chosen],
        [[row[k] for k in chosen] for row in problem.images],
        problem.initial,
        problem.times,
        settings,
        truth=problem.truth,
    )
    record = _video_record(
        problem,
        "dmvr",
        len(chosen),
        result.params,
        backprojection_before=result.history[0]["backprojection"],
        backprojection_after=best_entry(result.history, result.best_iteration)["backprojection"],
        texture_psnr=texture_psnr(problem, result.texture),
        texture_psnr_seen=texture_psnr(problem, result.texture, result.seen),
        light_direction_error_deg=light_direction_error(problem, result.light),
        iterations=len(result.history),
        diverged=result.diverged,
        seconds=result.seconds,
    )
    return record, result


def refine_video_per_frame(
    problem: SequenceProblem, settings: SMVRSettings = SMVRSettings(), camera_names: Sequence[str] | None = None
):
    """SMVR on every frame of ``problem`` independently (as DMVR's baseline: images and initial
    estimates only, no joints): the tidy record (means over frames) and the per-frame results."""
    from handlib.rendering.colour import srgb_decode

    chosen = _subset(problem, camera_names)
    cameras = [problem.cameras[k] for k in chosen]
    results = [
        refine_frame(problem.model, cameras, [row[k] for k in chosen], initial, None, None, settings, truth=truth)
        for row, initial, truth in zip(problem.images, problem.initial, problem.truth)
    ]
    record = _video_record(
        problem,
        "smvr",
        len(chosen),
        [r.params for r in results],
        backprojection_before=float(np.mean([r.history[0]["backprojection"] for r in results])),
        backprojection_after=float(
            np.mean([best_entry(r.history, r.best_iteration)["backprojection"] for r in results])
        ),
        # SMVR's colour map is in the images' sRGB encoding and holds the shading: linearise it to compare.
        texture_psnr=texture_psnr(problem, srgb_decode(results[0].texture)),
        iterations=sum(len(r.history) for r in results),
        diverged=any(r.diverged for r in results),
        seconds=sum(r.seconds for r in results),
    )
    return record, results
