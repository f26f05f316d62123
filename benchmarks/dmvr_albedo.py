"""What limits DMVR's albedo: the geometry, the images or the hand's mismatch with the model?

On development videos that no notebook uses, at the dmvr chapter's quick scale (3 frames, 4
cameras of 167x256, a 512 atlas of 7 levels, 10 mm annotation noise), three measurements:

- ``--runs refine`` (the default): on the realistic benchmark, DMVR as the chapter runs it (from
  the annotations, the full 100-iteration schedule) against DMVR given the best geometry the model
  can reach (each frame's closest model hand: the floor) with only the light, the albedo and the
  colour transforms optimised. Same seed, same video.
- ``--runs closed``: DMVR's closed-form albedo (``albedo="demodulated"``) given each frame's
  closest model hand, the true light and identity colour transforms, on the five benchmarks of
  ``--runs start``: what that estimate reaches when all else is right.
- ``--runs start``: the albedo DMVR starts from (the observations back-projected on each frame's
  closest model hand and linearised, one iteration on the light alone), on the ideal benchmark,
  with each part of the realistic one alone (a subdivided true surface; the full mismatch of
  handlib.data.mismatch; the degraded images of handlib.data.realism) and on the realistic one.

Prints, and appends to ``dmvr_albedo.csv``: eps_v before and after, the albedo's robust PSNR
against the true skin (after the best 3x4 colour transform) over the hand's texels and over those
some camera saw, the same over the seen texels for the texture Adam left (``optimised_psnr_seen``:
with ``--albedo demodulated``, the default, the result's albedo is estimated again in closed form
at the refined hand; the pair is measured on one run), the re-render's robust PSNR under a light
neither was fitted under (the chapter's ``relight_psnr_overlap``), and the light's direction error.

    .venv/bin/python benchmarks/dmvr_albedo.py                  # 2 videos x 2 starts, ~8 min on 2 cores
    .venv/bin/python benchmarks/dmvr_albedo.py --runs start     # 2 videos x 5 benchmarks, ~6 min
    .venv/bin/python benchmarks/dmvr_albedo.py --levels 4       # optimise the 4 coarsest of 7 levels only
    .venv/bin/python benchmarks/dmvr_albedo.py --runs closed    # the closed-form albedo given geometry and light
    .venv/bin/python benchmarks/dmvr_albedo.py --runs closed --cases 3 --smoothing 0 0.1 0.3 1   # its regulariser
    .venv/bin/python benchmarks/dmvr_albedo.py --cases 3 --background colour   # a colour behind the hand
    .venv/bin/python benchmarks/dmvr_albedo.py --cases 3 --plate-margin 0.0586    # a 15 px hole at 256 px, not 4


``--background colour`` renders the hand over each camera's median colour, as before 0.6.2 (rows
with no ``background`` are from then); ``--plate-margin`` sets ``DMVRSettings.plate_margin``.

``--levels L`` caps the levels of detail the schedule optimises at the L coarsest (the finer ones
keep the back-projected start): a coarse-to-fine prior that the paper's schedule applies only in its
second stage (2 levels).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from render import append_rows, machine  # noqa: E402

from handlib.data.mismatch import Mismatch  # noqa: E402
from handlib.data.realism import IDEAL, Realism  # noqa: E402
from handlib.data.synth import studio_light  # noqa: E402
from handlib.experiments.study import (  # noqa: E402
    Case,
    Scale,
    make_sequence_problem,
    refine_video,
    relight,
    texture_psnr,
)
from handlib.methods.dmvr import DMVRSettings  # noqa: E402
from handlib.methods.schedule import DMVR_SCHEDULE, Stage  # noqa: E402
from handlib.model.hand import HandParams  # noqa: E402

CASES = [Case("peace", 61, noise_mm=10.0), Case("three", 62, noise_mm=10.0), Case("relaxed", 63, noise_mm=10.0)]
SCALE = Scale(cameras=4, shrink=2, spp=16, texture_size=512, directional_light=0.4, colour_response=0.03)
#: The realistic benchmark and its parts, each alone.
BENCHMARKS = {
    "ideal": SCALE.on("ideal"),
    "subdivided surface only": replace(SCALE, mismatch=Mismatch(palm_arch=0.0, finger_length=0.0, finger_girth=0.0)),
    "mismatch only": replace(SCALE, mismatch=Mismatch(), realism=IDEAL),
    "images only": replace(SCALE, realism=Realism()),
    "realistic": SCALE.on("realistic"),
}
#: The paper's schedule with the geometry held: light, albedo and colour transforms only.
APPEARANCE_ONLY = tuple(
    Stage(tuple(g for g in s.optimise if g in ("environment", "texture", "colour")), s.iterations, s.levels)
    for s in DMVR_SCHEDULE
)
START_ONLY = (Stage(("environment",), 1),)


def capped(schedule: tuple[Stage, ...], levels: int) -> tuple[Stage, ...]:
    """``schedule`` with no stage optimising more than the ``levels`` coarsest levels of detail."""
    return tuple(
        Stage(s.optimise, s.iterations, levels if s.levels is None else min(s.levels, levels)) for s in schedule
    )


def closest_hands(folder: Path, problem) -> list[HandParams]:
    """Each frame's closest model hand (the floor's fit), as the capture's ground truth holds it."""
    root = next(p for p in folder.iterdir() if p.name.startswith(f"{problem.case.key}_t{problem.frames}_"))
    fits = json.loads((root / "ground_truth" / "MANO_NeuralAnnot.json").read_text())["0"]
    return [HandParams.from_interhand(fits[str(t)]["right"]) for t in problem.times]


def closed_form_psnr(problem, size: int, smoothing: float) -> float:
    """The albedo's robust PSNR on the texels seen when DMVR's closed form is given the geometry
    (``problem.initial``), the true light and identity colour transforms: what the closed form
    reaches with all else right (``smoothing``: DMVRSettings.albedo_smoothing)."""
    import torch

    from handlib.geometry.surface import HandSurface
    from handlib.methods.dmvr import demodulated_albedo
    from handlib.methods.observations import background_colours, observed_images
    from handlib.rendering import lighting
    from handlib.rendering.renderer import Renderer, RenderSettings

    surface = HandSurface.of(problem.model)
    observed = [observed_images(row, problem.cameras, t) for t, row in enumerate(problem.images)]
    with torch.no_grad():
        vertices = [[problem.model(p).vertices[0]] for p in problem.initial]
        coverage = Renderer(problem.cameras, surface, RenderSettings(mode="radiance", spp=4)).render(
            vertices[0][0], torch.full((4, 4, 3), 0.5), lighting.uniform(1.0, 2)
        )
    (baked,) = demodulated_albedo(
        [surface],
        problem.cameras,
        observed,
        vertices,
        torch.as_tensor(problem.true_light, dtype=torch.float32),
        torch.eye(3, 4).expand(len(problem.cameras), -1, -1),
        background_colours(observed[0], coverage.alphas),
        size,
        smoothing=smoothing,
    )
    return texture_psnr(problem, baked.texture.clamp(0.0, 1.0), baked.seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", choices=("refine", "start", "closed"), default="refine")
    parser.add_argument("--cases", type=int, default=2, help="how many development videos")
    parser.add_argument("--skip", type=int, default=0, help="start at this development video (0-based)")
    parser.add_argument("--levels", type=int, default=7, help="optimise at most this many coarsest levels (of 7)")
    parser.add_argument("--albedo", choices=("demodulated", "optimised"), default="demodulated")
    parser.add_argument(
        "--smoothing",
        type=float,
        nargs="+",
        default=[DMVRSettings.albedo_smoothing],
        help="the closed form's albedo_smoothing (several: one row each)",
    )
    parser.add_argument("--background", choices=("plate", "colour"), default=DMVRSettings.background)
    parser.add_argument(
        "--plate-margin", type=float, default=DMVRSettings.plate_margin, help="the plate's hole, over the image size"
    )
    parser.add_argument("--csv", type=Path, default=HERE / "dmvr_albedo.csv")
    args = parser.parse_args()
    base = DMVRSettings(
        schedule=DMVR_SCHEDULE,
        texture_size=512,
        lod_levels=7,
        background=args.background,
        plate_margin=args.plate_margin,
    )
    new_light = studio_light(0.9, np.random.default_rng(2024))  # the dmvr chapter's
    rows = []
    for case in CASES[args.skip : args.skip + args.cases]:
        for benchmark, scale in (
            BENCHMARKS.items() if args.runs != "refine" else [("realistic", BENCHMARKS["realistic"])]
        ):
            with tempfile.TemporaryDirectory() as folder:
                problem = make_sequence_problem(folder, case, 3, scale)
                closest = replace(problem, initial=closest_hands(Path(folder), problem))
                if args.runs == "closed":
                    for smoothing in args.smoothing:
                        row = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "case": case.key}
                        row.update(benchmark=benchmark, start="closest hand, closed form under the true light")
                        psnr = closed_form_psnr(closest, base.texture_size, smoothing)
                        row.update(texture_psnr_seen=round(psnr, 2), albedo_smoothing=smoothing)
                        print(row, flush=True)
                        rows.append(row)
                    continue
                if args.runs == "start":
                    variants = {"closest hand, start albedo": (closest, START_ONLY)}
                else:
                    variants = {
                        "annotations, full schedule": (problem, DMVR_SCHEDULE),
                        "closest hand, appearance only": (closest, APPEARANCE_ONLY),
                    }
                for start, (posed, schedule) in variants.items():
                    settings = replace(
                        base,
                        schedule=capped(schedule, args.levels),
                        albedo="optimised" if args.runs == "start" else args.albedo,
                    )
                    record, result = refine_video(posed, settings)
                    relit = relight(posed, 0, result.params[0], result.texture, new_light)
                    row = {
                        "date": time.strftime("%Y-%m-%d %H:%M"),
                        "machine": machine(),
                        "case": case.key,
                        "benchmark": benchmark,
                        "start": start,
                        "levels": args.levels,
                        "iterations": record["iterations"],
                        "eps_v_before": round(record["eps_v_before"], 3),
                        "eps_v_after": round(record["eps_v_after"], 3),
                        "texture_psnr": round(record["texture_psnr"], 2),
                        "texture_psnr_seen": round(record["texture_psnr_seen"], 2),
                        "optimised_psnr_seen": round(texture_psnr(posed, result.optimised_texture, result.seen), 2),
                        "albedo": settings.albedo,
                        "albedo_smoothing": settings.albedo_smoothing,
                        "background": settings.background,
                        "plate_margin": round(settings.plate_margin, 4),
                        "relight_psnr_overlap": round(relit.psnr, 2),
                        "light_direction_error_deg": round(record["light_direction_error_deg"], 1),
                        "seconds": round(record["seconds"], 1),
                    }
                    print(row, flush=True)
                    rows.append(row)
    append_rows(args.csv, rows)


if __name__ == "__main__":
    main()
