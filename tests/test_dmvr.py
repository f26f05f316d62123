"""DMVR: its pure parts (levels of detail, temporal prior, robust PSNR, sRGB) and a smoke-sized video refinement."""

import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from handlib.experiments.study import Case, Scale, best_entry, geometry_errors, make_sequence_problem, texture_psnr
from handlib.geometry.surface import HandSurface
from handlib.methods import lod, metrics
from handlib.methods.dmvr import DMVRSettings, data_energies, edge_map, over_plate, refine_sequence
from handlib.methods.observations import background_plates
from handlib.methods.schedule import DMVR_SCHEDULE, scaled, total_iterations
from handlib.methods.temporal import bilateral_filter, temporal_prior
from handlib.rendering import lighting
from handlib.rendering.colour import apply_colour_transform, srgb_decode, srgb_encode, to_srgb8
from handlib.rendering.renderer import Renderer, RenderSettings
from handlib.rendering.texture import rasterize_atlas


def test_levels_of_detail_compose_back_to_the_texture():
    texture = torch.rand(64, 64, 3, dtype=torch.float64)
    levels = lod.decompose(texture, 4)
    assert [level.shape[0] for level in levels] == [8, 16, 32, 64] == lod.level_sizes(64, 4)
    assert torch.allclose(lod.compose(levels), texture, atol=1e-12)
    assert torch.allclose(levels[0].mean((0, 1)), texture.mean((0, 1)))  # the coarsest level holds the mean colour
    with pytest.raises(ValueError, match="divisible by 8"):
        lod.level_sizes(100, 4)
    with pytest.raises(ValueError):
        DMVRSettings(texture_size=1000)
    for smoothing in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="albedo_smoothing"):
            DMVRSettings(albedo_smoothing=smoothing)
    with pytest.raises(ValueError, match="background"):
        DMVRSettings(background="image")
    for margin in (-0.01, 0.5, float("nan")):
        with pytest.raises(ValueError, match="plate_margin"):
            DMVRSettings(plate_margin=margin)


def test_bilateral_filter_smooths_noise_and_keeps_jumps():
    torch.manual_seed(0)
    curling = slice(6, 15)  # nine angles (the index tip, the middle finger's two inner joints) curl by 1.2 rad
    clean = torch.zeros(20, 45)
    clean[10:, curling] = 1.2
    # Annotation noise of ~0.2 rad per angle (10 mm of vertex error): as 45-angle vectors, neighbours
    # differ by ~1.9 rad, where a range kernel on whole vectors (sigma 0.6) would smooth nothing.
    noisy = clean + 0.2 * torch.randn(20, 45)
    filtered = bilateral_filter(noisy, torch.arange(20.0))
    inside = [*range(1, 9), *range(11, 19)]
    # Weights (e^-2, 1, e^-2) in time times ~0.95 in range: the noise falls to ~0.85 of itself
    # (a range kernel on whole vectors leaves it at 0.997).
    assert (filtered - clean)[inside].norm(dim=1).mean() < 0.87 * (noisy - clean)[inside].norm(dim=1).mean()
    # The curl (at sample 10) survives: across it the range weight is e^-(1.2^2 / 0.72) = 0.14.
    jump = (filtered[10, curling] - filtered[9, curling]).mean()
    assert jump > 0.9 * (noisy[10, curling] - noisy[9, curling]).mean()
    # Constant signals are left alone; the prior is zero for them, positive for noise.
    assert temporal_prior(torch.ones(5, 45), torch.arange(5.0)) == 0
    assert temporal_prior(noisy.double(), torch.arange(20.0, dtype=torch.float64)) > 0
    signal = noisy[:6].double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: bilateral_filter(x, torch.arange(6.0, dtype=torch.float64)), (signal,))
    with pytest.raises(ValueError, match="odd"):
        bilateral_filter(noisy, torch.arange(20.0), window=2)


def test_robust_psnr_ignores_global_colour_transforms():
    torch.manual_seed(1)
    reference = torch.rand(32, 32, 3)
    tinted = reference @ torch.tensor([[0.8, 0.1, 0.0], [0.0, 0.7, 0.1], [0.05, 0.0, 0.9]]).T + 0.05
    assert metrics.robust_psnr(reference, tinted) > 60
    noisy = reference + 0.01 * torch.randn_like(reference)
    assert abs(metrics.robust_psnr(reference, noisy) - 40.0) < 0.5  # sd 0.01 -> 40 dB
    assert metrics.robust_psnr(reference, torch.rand(32, 32, 3)) < 15
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[:2, :1] = True
    with pytest.raises(ValueError, match="at least 4"):
        metrics.robust_psnr(reference, noisy, mask)


def test_srgb_round_trip_matches_the_uint8_encoder():
    linear = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert torch.allclose(srgb_decode(srgb_encode(linear)), linear, atol=1e-9)
    assert np.abs(np.round(srgb_encode(linear).numpy() * 255) - to_srgb8(linear.numpy()[:, None])[:, 0]).max() <= 1
    image = np.zeros((20, 20, 3))
    image[5:15, 5:15] = 1.0
    edges = edge_map(image)
    assert edges[5, 10] and edges[14, 10] and not edges[10, 10] and not edges[0, 0]


def edge_problem(folder: Path):
    return make_sequence_problem(
        folder, Case("ok", 13, noise_mm=5.0), frames=1, scale=Scale(cameras=2, shrink=2, spp=16, texture_size=256)
    )


def edge_disagreement(problem, seed: int = 1) -> tuple[int, int]:
    """Edge pixels of the true hand's 256-spp render, and pixels where its 4-spp render's edge map
    differs from that one (Monte Carlo ``seed``)."""
    with torch.no_grad():
        vertices = problem.truth[0].vertices
    surface = HandSurface.of(problem.model)

    def encoded(spp: int) -> list[np.ndarray]:
        renderer = Renderer(problem.cameras, surface, RenderSettings(mode="radiance", spp=spp, seed=seed))
        with torch.no_grad():
            rendered = renderer.render(
                vertices,
                torch.as_tensor(problem.true_texture),
                lighting.uniform(1.0),
                backgrounds=[(0.02, 0.02, 0.03)] * 2,
            )
        return [srgb_encode(image).numpy() for image in rendered.images]

    noisy, clean = [[edge_map(image) for image in encoded(spp)] for spp in (4, 256)]
    outline = sum(int(edges.sum()) for edges in clean)
    differing = sum(int((a ^ b).sum()) for a, b in zip(noisy, clean))
    return outline, differing


def test_edge_maps_of_a_four_spp_render_see_the_hand_not_the_sampling_noise(tmp_path):
    # The edge term weighs pixels where image and render edges disagree; at DMVR's 4 spp that
    # set must come from the hand's outline and folds, not from Monte Carlo noise. Reference: the
    # same view at 256 spp. Unblurred Canny differs on ~85% as many pixels as the hand has edges.
    outline, differing = edge_disagreement(edge_problem(tmp_path))
    assert outline > 1000  # the hand's edges are found at all
    # Over render seeds 1-8 (benchmarks/test_margins.py): differing / outline 0.21 +- 0.048, worst
    # 0.27; the bound 0.45 is 5.1 sd away, and the unblurred edge map (0.84) fails it.
    assert differing < 0.45 * outline


def test_dmvr_schedule_is_the_papers():
    assert [(s.optimise, s.iterations, s.levels) for s in DMVR_SCHEDULE][:2] == [
        (("environment", "colour"), 10, None),
        (("texture", "colour"), 10, 2),
    ]
    assert total_iterations(DMVR_SCHEDULE) == 100 and DMVR_SCHEDULE[2].levels is None


def smoke_video(folder: Path):
    """The smoke case: gesture "ok", seed 13, 3 frames, 3 cameras at a quarter of the resolution, 5 mm off."""
    return make_sequence_problem(
        folder, Case("ok", 13, noise_mm=5.0), frames=3, scale=Scale(cameras=3, shrink=4, spp=8, texture_size=128)
    )


#: 12% of DMVR's schedule (12 iterations) on a small atlas: the smoke video's refinement.
SMOKE_SETTINGS = DMVRSettings(schedule=scaled(DMVR_SCHEDULE, 0.12), texture_size=128, lod_levels=4)


def smoke_video_refinement(problem, seed: int = 0):
    """Mean vertex error before and after 12% of DMVR's schedule (12 iterations), and the result;
    ``seed`` is the Monte Carlo seed (``benchmarks/test_margins.py`` measures the spread over seeds)."""
    before = np.mean([geometry_errors(problem.model, i, t)[0] for i, t in zip(problem.initial, problem.truth)])
    result = refine_sequence(
        problem.model,
        problem.cameras,
        problem.images,
        problem.initial,
        problem.times,
        replace(SMOKE_SETTINGS, seed=seed),
        truth=problem.truth,
    )
    after = np.mean([geometry_errors(problem.model, p, t)[0] for p, t in zip(result.params, problem.truth)])
    return before, after, result


def test_the_albedo_floor_is_the_closed_form_at_the_closest_hands_under_the_true_light(tmp_path):
    """The floor the dmvr chapter reads its albedo against: a realistic capture's closest model hands
    (each at the floor distance the capture recorded), its true light and colour responses; take
    any of them away and the closed-form albedo gets worse."""
    from handlib.experiments.study import albedo_floor

    scale = Scale(cameras=3, shrink=4, spp=8, texture_size=128, colour_response=0.03, directional_light=0.4)
    problem = make_sequence_problem(tmp_path, Case("ok", 13, noise_mm=10.0), 3, scale.on("realistic"))
    for closest, truth in zip(problem.closest, problem.truth):
        assert truth.floor > 0.5 and abs(geometry_errors(problem.model, closest, truth)[0] - truth.floor) < 1e-3
    assert problem.colour_responses.shape == (3, 3, 4)
    floor = albedo_floor(problem, 128)
    annotated = albedo_floor(replace(problem, closest=problem.initial), 128)
    white = albedo_floor(replace(problem, true_light=lighting.uniform(1.0, 2).numpy()), 128)
    unresponsive = albedo_floor(replace(problem, colour_responses=np.tile(np.eye(3, 4), (3, 1, 1))), 128)
    # Measured: 32.76 dB; at the annotations 29.71, under a uniform light 32.33, with identity
    # colour responses 32.33 (seeds 14 / 15: 30.53 / 31.37 against 30.06 / 29.77, 29.53 / 30.71, 30.45 / 31.45).
    assert floor > 30.0 and floor > annotated + 1.5 and floor > max(white, unresponsive) + 0.2, (
        floor,
        annotated,
        white,
        unresponsive,
    )
    with pytest.raises(ValueError, match="closest hands"):
        albedo_floor(replace(problem, closest=None), 128)


@pytest.mark.slow
def test_smoke_video_refinement_reduces_vertex_error(tmp_path):
    problem = smoke_video(tmp_path)
    before, after, result = smoke_video_refinement(problem)
    assert abs(before - 5.0) < 0.3
    # Measured over Monte Carlo seeds 0-7 (benchmarks/test_margins.py): after / before 0.50 +- 0.027,
    # worst 0.53; the bound 0.7 is 7.2 sd away (it was 0.85, 12.7 sd: looser than it needed to be).
    assert after < 0.7 * before, (before, after)
    assert not result.diverged and len(result.history) == 12
    assert result.texture.shape == (128, 128, 3) and math.isfinite(result.history[-1]["prior"])
    # One shape for the video.
    assert all(torch.equal(p.betas, result.params[0].betas) for p in result.params)
    # The plates the renders were shown over: one per camera, the photo itself in a corner the hand never reaches.
    assert len(result.plates) == len(problem.cameras)
    for c, (plate, camera) in enumerate(zip(result.plates, problem.cameras)):
        assert plate.shape == (camera.height, camera.width, 3)
        corner = np.median([srgb_decode(torch.as_tensor(row[c][0, 0] / 255.0)).numpy() for row in problem.images], 0)
        assert np.allclose(plate[0, 0].numpy(), corner, atol=1e-4)
    # The light's gauge: its mean stays white at 1, its other coefficients grey; the light moved.
    light = result.light
    assert torch.allclose(light[0], lighting.uniform(1.0, 2)[0]) and torch.equal(light, light[:, :1].expand(-1, 3))
    assert light[1:].abs().max() > 1e-4
    # The texels some camera saw in some frame: all on the hand, most of it, not all of it.
    surface = HandSurface.of(problem.model)
    _, covered = rasterize_atlas(surface, torch.zeros(surface.num_vertices, 1), 128)
    assert not (result.seen & ~covered).any() and 0.3 < result.seen[covered].mean() < 0.95
    # The albedo in closed form at the refined hand, under the light estimated again (the defaults),
    # against the texture Adam left: measured over seeds 0-2, 30.27 / 30.29 / 30.46 dB against
    # 27.95 / 27.98 / 28.06 (+2.3-2.4 dB; under the optimiser's light, 0.6.3: +1.4-1.5 dB).
    demodulated, optimised = (texture_psnr(problem, t, result.seen) for t in (result.texture, result.optimised_texture))
    assert demodulated > optimised + 1.5, (demodulated, optimised)
    # This video's true light has no key light (SH band 1 is 0): the light estimated again is
    # nearer that than the optimiser's (band 1's norm 0.25 / 0.45 / 0.28 against 0.78 / 0.75 / 0.80).
    assert result.light[1:, 0].norm() < 0.8 * result.optimised_light[1:, 0].norm(), (
        result.light,
        result.optimised_light,
    )
    # The image energy at any hand under the appearance the run fitted: at the result, what the history
    # recorded at its best iteration (other Monte Carlo samples: measured 54.2 against 53.5); at the
    # annotations, higher (67.8), as the history's first iteration was (67.7).
    at_result, at_start = (
        sum(data_energies(problem.model, problem.cameras, problem.images, params, result, SMOKE_SETTINGS))
        for params in (result.params, problem.initial)
    )
    best = best_entry(result.history, result.best_iteration)
    assert abs(at_result - (best["data"] + best["edge"])) < 0.03 * at_result, (at_result, best)
    assert at_start > 1.15 * at_result, (at_start, at_result)
    with pytest.raises(ValueError, match="one hand per frame"):
        data_energies(problem.model, problem.cameras, problem.images, result.params[:2], result, SMOKE_SETTINGS)


@pytest.mark.slow
def test_refine_command_dmvr_writes_every_frame(tmp_path):
    import json

    from handlib.cli import main
    from handlib.data.interhand import InterHandReader
    from handlib.data.synth import SynthSettings, synthesize
    from handlib.model.hand import HandParams

    data = synthesize(
        tmp_path / "capture",
        SynthSettings(cameras=2, gestures=("open", "fist"), frames=3, shrink=4, spp=4, texture_size=64, seed=3),
        progress=False,
    )
    frames = sorted(f.frame for f in InterHandReader(data, "test"))
    seq = next(iter(InterHandReader(data, "test"))).seq_name
    args = [
        "refine",
        "--data",
        str(data),
        "--capture",
        "0",
        "--seq",
        seq,
        "--method",
        "dmvr",
        "--frames",
        f"{frames[0]}:{frames[1]}",
        "--schedule-scale",
        "0.05",
        "--out",
        str(tmp_path / "out"),
        "--quiet",
    ]
    assert main(args) == 0
    written = json.loads((tmp_path / "out" / "MANO_NeuralAnnot.json").read_text())["0"]
    assert sorted(map(int, written)) == frames[:2]
    assert all(HandParams.from_interhand(written[str(f)]["right"]).hand_pose.shape == (1, 45) for f in frames[:2])
    assert len(json.loads((tmp_path / "out" / "environment.json").read_text())["sh_coefficients"]) == 4
    assert (tmp_path / "out" / "texture.png").is_file()
    assert len(json.loads((tmp_path / "out" / "metrics.json").read_text())["history"]) == 6
    assert main(args[:-7] + ["--frames", "1:x", *args[-5:]]) == 2  # a bad range says how to write one
    assert main([a if a != "dmvr" else "smvr" for a in args]) == 2  # SMVR needs --frame


def test_relighting_scores_a_right_appearance_above_a_wrong_one(tmp_path):
    """The re-render metric of the appearance figure: the truth's own parameters and skin under a new
    light score far above the same geometry with a flat grey albedo, and above a misplaced hand."""
    from handlib.data.synth import read_truths, studio_light
    from handlib.experiments.study import relight

    problem = edge_problem(tmp_path)
    root = next(p for p in tmp_path.iterdir() if (p / "ground_truth").is_dir())
    closest = problem.closest[0]
    assert read_truths(root)[(0, problem.times[0], "right")].floor == 0.0  # an ideal capture: exact
    light = studio_light(0.9, np.random.default_rng(5))
    skin = torch.as_tensor(problem.true_texture)
    right = relight(problem, 0, closest, skin, light, spp=16)
    grey = relight(problem, 0, closest, torch.full_like(skin, 0.4), light, spp=16)
    moved = relight(problem, 0, problem.initial[0], skin, light, spp=16)
    # Same samples for both renders: the truth against itself is near-exact (76 dB here); a grey
    # albedo keeps the shading (31 dB), a hand 5 mm off loses it where it moved (25 dB).
    assert right.psnr > 50.0 and right.psnr > grey.psnr + 10.0 and right.psnr > moved.psnr + 10.0
    assert right.true[0].shape == (problem.cameras[0].height, problem.cameras[0].width, 3)


@pytest.mark.slow
def test_video_albedo_takes_no_colour_from_a_saturated_background(tmp_path):
    """A video filmed before saturated green (JPEG carries the green a pixel or two into the hand),
    annotated 5 mm off: no texel of DMVR's albedo is green, seen or filled, and most were seen.
    Measured: 56 green texels with no margin at the refined outline (OUTLINE_PX = 0), none with
    1 px (63% of the hand's texels seen) or 2 px (49%). The texture the optimiser left has about a
    hundred (its gradients pull texels at a misplaced outline toward the backdrop)."""
    from handlib.data.interhand import InterHandReader
    from handlib.data.synth import SynthSettings, synthesize
    from handlib.model.hand import HandModel

    green = (0.0, 0.7, 0.0)  # linear RGB
    data = synthesize(
        tmp_path / "green",
        SynthSettings(
            cameras=4,
            gestures=("open", "fist"),
            frames=2,
            shrink=4,
            spp=8,
            texture_size=128,
            seed=8,
            noise_mm=5.0,
            background=green,
        ),
        progress=False,
    )
    video = sorted(InterHandReader(data, "test"), key=lambda f: f.frame)
    names = sorted(video[0].cameras)
    result = refine_sequence(
        HandModel("right"),
        [video[0].cameras[n] for n in names],
        [[f.image(n) for n in names] for f in video],
        [f.hand_params("right") for f in video],
        [f.frame for f in video],
        DMVRSettings(schedule=scaled(DMVR_SCHEDULE, 0.1), texture_size=128, lod_levels=4),
    )
    surface = HandSurface.of(HandModel("right"))
    _, covered = rasterize_atlas(surface, torch.zeros(surface.num_vertices, 1), 128)
    texels = np.asarray(result.texture)[covered]
    greenish = texels[:, 1] - np.maximum(texels[:, 0], texels[:, 2])  # skin is red over green
    assert greenish.max() < 0.15, (greenish.max(), (greenish > 0.15).sum())
    assert result.seen[covered].mean() > 0.4


def test_the_background_plate_is_the_backdrop_where_the_hand_moved_away_and_a_guess_from_it_behind():
    """A static backdrop (blue-grey ramp, a bright bar), a skin-coloured disc moving over it in three
    frames: where some frame shows the backdrop the plate is that backdrop; behind what the disc
    always covers it is inpainted from the backdrop (no skin); a flat backdrop stays flat."""
    height, width = 60, 90
    ramp = np.broadcast_to(np.linspace(0.2, 0.4, height, dtype=np.float32)[:, None], (height, width))
    backdrop = np.stack([0.5 * ramp, 0.6 * ramp, ramp], -1)
    backdrop[:, 40:44] = 0.9  # a bright bar behind the hand
    skin = np.array([0.9, 0.55, 0.4], np.float32)
    yy, xx = np.mgrid[:height, :width]
    for flat in (False, True):
        scene = np.full_like(backdrop, 0.3) if flat else backdrop
        frames, alphas = [], []
        for centre in (35, 42, 49):  # the disc moves 7 px per frame; 15 px always covered
            disc = (yy - 30) ** 2 + (xx - centre) ** 2 <= 15**2
            frames.append([torch.as_tensor(np.where(disc[..., None], skin, scene))])
            alphas.append([torch.as_tensor(disc.astype(np.float32))])
        (plate,) = background_plates(frames, alphas, margin=2 / width)
        plate = plate.numpy()
        near = [cv2.dilate(a[0].numpy().astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 for a in alphas]
        shown, hole = ~np.logical_and.reduce(near), np.logical_and.reduce(near)
        assert hole.sum() > 300 and shown.sum() > 4000
        assert np.abs(plate[shown] - scene[shown]).max() < 1e-6
        if flat:  # OpenCV's Telea inpainting gives values from -1.3 to 1.6 here
            assert np.abs(plate[hole] - 0.3).max() < 1e-3
        else:
            reddish = plate[hole][:, 0] - plate[hole][:, 2]  # skin's is 0.5, the backdrop's at most 0
            assert reddish.max() < 0.02, reddish.max()
            assert plate[hole].min() >= scene.min() - 1e-3 and plate[hole].max() <= scene.max() + 1e-3
    with pytest.raises(ValueError, match="one coverage per photo"):
        background_plates(frames, alphas[:2])


def test_the_plate_stays_as_the_photo_shows_it_whatever_the_colour_transform():
    image = torch.rand(4, 5, 3) * 0.5
    alpha = torch.zeros(4, 5)
    alpha[1:3, 1:4] = 1.0
    image = image * alpha[..., None]  # the hand over black, premultiplied
    plate = torch.rand(4, 5, 3)
    transform = torch.tensor([[1.1, 0.05, 0.0, 0.02], [0.0, 0.9, 0.1, -0.01], [0.03, 0.0, 1.2, 0.05]])
    shown = over_plate(image, alpha, transform, plate)
    outside = alpha == 0
    assert torch.equal(shown[outside], plate[outside])
    assert torch.allclose(shown[~outside], apply_colour_transform(image, transform)[~outside])
