"""What limits DMVR's albedo: the geometry, the images or the hand's mismatch with the model?

On development videos that no notebook uses, at the dmvr chapter's quick scale (3 frames, 4
cameras of 167x256, a 512 atlas of 7 levels, 10 mm annotation noise), three measurements:

- ``--runs refine`` (the default): on the realistic benchmark, DMVR as the chapter runs it (from
  the annotations, the full 100-iteration schedule) against DMVR given the best geometry the model
  can reach (each frame's closest model hand: the floor) with only the light, the albedo and the
  colour transforms optimised. Same seed, same video.
- ``--runs closed``: the albedo's floor (``handlib.experiments.study.albedo_floor``): DMVR's
  closed-form albedo (``albedo="demodulated"``) given each frame's closest model hand, the true
  light and each camera's true colour response, on the five benchmarks of ``--runs start``: what
  that estimate reaches when all else is right. Rows before 2026-12-04 ("closed form under the
  true light") took identity colour transforms instead: 0.04-0.24 dB lower on the realistic one.
- ``--runs start``: the albedo DMVR starts from (the observations back-projected on each frame's
  closest model hand and linearised, one iteration on the light alone), on the ideal benchmark,
  with each part of the realistic one alone (a subdivided true surface; the full mismatch of
  handlib.data.mismatch; the degraded images of handlib.data.realism) and on the realistic one.

Prints, and appends to ``dmvr_albedo.csv``: eps_v before and after, the albedo's robust PSNR
against the true skin (after the best 3x4 colour transform) over the hand's texels and over those
some camera saw (and, since 0.6.3, its floor on the same texels: ``texture_psnr_seen_floor``),
the same over the seen texels for the texture Adam left (``optimised_psnr_seen``: with
``--albedo demodulated``, the default, the result's albedo is estimated again in closed form at
the refined hand; the pair is measured on one run), the re-render's robust PSNR under a light
neither was fitted under (the chapter's ``relight_psnr_overlap``), the light's direction error,
and (since 0.6.3) the energy at the best iteration: where the closest hand's run ends lower than
the run from the annotations, the energy prefers the right hand and the optimiser stopped short.
Since 0.6.4 the light is estimated again at the refined hand (``--light consistent``, the default;
``optimised`` the optimiser's, as before): each such row also gives, from the same run, the
optimiser's light's direction error and the albedo and re-render under that light
(``optimised_light_*``).

    .venv/bin/python benchmarks/dmvr_albedo.py                  # 2 videos x 2 starts, ~8 min on 2 cores
    .venv/bin/python benchmarks/dmvr_albedo.py --runs start     # 2 videos x 5 benchmarks, ~6 min
    .venv/bin/python benchmarks/dmvr_albedo.py --levels 4       # optimise the 4 coarsest of 7 levels only
    .venv/bin/python benchmarks/dmvr_albedo.py --runs closed    # the closed-form albedo given geometry and light
    .venv/bin/python benchmarks/dmvr_albedo.py --runs closed --cases 3 --smoothing 0 0.1 0.3 1   # its regulariser
    .venv/bin/python benchmarks/dmvr_albedo.py --cases 3 --background colour   # a colour behind the hand
    .venv/bin/python benchmarks/dmvr_albedo.py --cases 3 --held-out --start annotations   # videos that chose nothing
    .venv/bin/python benchmarks/dmvr_albedo.py --cases 3 --plate-margin 0.0586    # a 15 px hole at 256 px, not 4
    .venv/bin/python benchmarks/dmvr_albedo.py --cases 3 --start annotations --smvr   # SMVR beside each run: r
    .venv/bin/python benchmarks/dmvr_albedo.py --cases 3 --held-out --start annotations --benchmark ideal


``--background colour`` renders the hand over each camera's median colour, as before 0.6.2 (rows
with no ``background`` are from then); ``--plate-margin`` sets ``DMVRSettings.plate_margin``.

Rows with a ``plate_refresh`` come from a trial that was not kept: the plates built again around
the current hand at those iterations (the best state taken since the last rebuild). A plate built
around a misplaced hand hides the backdrop that contradicts it: peace 5.92 mm (rebuilt at 40 and
70) against 4.92 without, three 4.35 against 4.32, relaxed 3.46 against 4.24; rebuilt every 10
iterations from 30, peace ended at 6.59 (a run stopped there, not in the file).

Rows with ``light_start`` ``consistent`` come from a trial that was not kept (2026-12-04): the
optimisation started from the light estimated at the annotations' hands (as at the end) and the
closed-form albedo under it, not from a white light and the back-projected observations. Against
the rows of 16:09-16:14 that day (same videos, seed and code otherwise): eps_v 5.20 / 4.44 / 4.17
mm against 5.49 / 4.51 / 3.30; the albedo 29.19 / 29.48 / 27.83 dB against 29.91 / 29.29 / 27.80;
the re-render 31.11 / 30.21 / 31.18 against 31.46 / 30.20 / 30.94. No better on the whole.

Since 0.6.6 each refine row says where the joints' error stays (``fingers_after_mm``, and
``fingers_closest_mm`` for the model's closest hands): the mean over frames of
``handlib.methods.metrics.finger_errors``, thumb / index / middle / ring / pinky / wrist in mm.

Since 0.6.7 each refine row run with the plate gives the image energy (eq. 3's data and edge
terms, over the frames, 4 seeds: ``handlib.methods.dmvr.data_energies``) under the appearance that
run fitted, at its own hand (``image_energy``) and at the model's closest hands
(``image_energy_closest``): where the closest is higher, that appearance holds the run's hand in
place, whatever ``energy`` the closest hand reaches with an appearance of its own. The rows of
2026-12-05 (``--cases 3 --start annotations``, with and without ``--held-out``): at the closest hands
higher on all six videos, peace / three / relaxed 134.1 / 140.6 / 272.3 against 128.4 / 123.1 /
267.3, thumbs_up / spread / point 217.2 / 164.9 / 219.3 against 209.3 / 144.7 / 196.3; the closest
hands with an appearance of their own ended at 173.9 / 143.3 / 183.1 (held out, 2026-12-04), below
those runs' 206.9 / 144.6 / 195.1.

``--benchmark`` picks the refine runs' benchmark (``realistic`` unless told). On the ideal one (a
hand of the model in perfect images, so the closest hand is the truth) the held-out videos
(2026-12-05, ``--cases 3 --held-out --start annotations --benchmark ideal``) reached eps_v 4.13 /
2.76 / 6.22 mm, albedo 29.67 / 33.19 / 29.63 dB over the texels seen (floors 32.12 / 36.79 /
32.78), re-render 32.56 / 33.97 / 25.44 dB. There, unlike on the realistic benchmark, the image
energy under each run's own appearance is lower at the truth than at the run's hand (144.8 / 94.6 /
149.9 against 159.0 / 95.9 / 164.1): the optimiser stopped short of a hand its energy prefers.

``--smvr`` also runs SMVR on each frame alone from the same annotations (its full 230-iteration
schedule, as the DMVR paper runs it) and gives its eps_v and its colour map's robust PSNR (frame
0's, linearised) over the hand's texels (``smvr_texture_psnr``, the paper's r and the dmvr_cameras
chapter's measure) and over the texels DMVR saw (``smvr_texture_psnr_seen``). Rows of 2026-12-05
(``--cases 3 --start annotations --smvr``, with and without ``--held-out``; peace / three / relaxed
/ thumbs_up / spread / point): DMVR's eps_v 5.16 / 4.30 / 3.35 / 5.39 / 4.06 / 6.42 mm against
SMVR's 9.49 / 7.35 / 5.70 / 7.23 / 6.95 / 7.19; the textures 27.65 / 28.40 / 27.61 / 27.87 / 29.93 /
28.40 dB against 26.59 / 27.28 / 27.05 / 27.51 / 28.06 / 27.77, r = +3.40% (95% t-interval +1.36 ..
+5.44, n = 6) over a 27.4 dB baseline (the paper: 3.84% over 29 dB); over the texels DMVR saw +3.19%
(+1.10 .. +5.29).

``--levels L`` caps the levels of detail the schedule optimises at the L coarsest (the finer ones
keep the back-projected start): a coarse-to-fine prior that the paper's schedule applies only in its
second stage (2 levels).
"""

from __future__ import annotations

import argparse
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
    albedo_floor,
    closed_form_albedo,
    finger_errors,
    light_direction_error,
    make_sequence_problem,
    refine_video,
    refine_video_per_frame,
    relight,
    texture_psnr,
)
from handlib.methods.dmvr import DMVRSettings, data_energies  # noqa: E402
from handlib.methods.schedule import DMVR_SCHEDULE, Stage  # noqa: E402
from handlib.methods.smvr import SMVRSettings  # noqa: E402
from handlib.rendering.colour import srgb_decode  # noqa: E402

CASES = [Case("peace", 61, noise_mm=10.0), Case("three", 62, noise_mm=10.0), Case("relaxed", 63, noise_mm=10.0)]
#: Videos that chose nothing (``--held-out``): first run on 2026-12-04, after every setting was fixed.
HELD_OUT = [Case("thumbs_up", 71, noise_mm=10.0), Case("spread", 72, noise_mm=10.0), Case("point", 73, noise_mm=10.0)]
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
CLOSED = "closest hand, closed form under the true light and colour responses"


def fingers(problem, params) -> str:
    """The joints' error by finger (mm, mean over frames): thumb / index / middle / ring / pinky / wrist."""
    errors = finger_errors(problem.model, params, problem.truth)
    return " / ".join(f"{np.mean([e[name] for e in errors]):.1f}" for name in errors[0])


def capped(schedule: tuple[Stage, ...], levels: int) -> tuple[Stage, ...]:
    """``schedule`` with no stage optimising more than the ``levels`` coarsest levels of detail."""
    return tuple(
        Stage(s.optimise, s.iterations, levels if s.levels is None else min(s.levels, levels)) for s in schedule
    )


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
    parser.add_argument("--start", choices=("both", "annotations", "closest"), default="both", help="which refine runs")
    parser.add_argument(
        "--light", choices=("consistent", "optimised"), default=DMVRSettings.light_estimate, help="light_estimate"
    )
    parser.add_argument("--held-out", action="store_true", help="the held-out videos instead of the development ones")
    parser.add_argument(
        "--smvr", action="store_true", help="also SMVR per frame from the annotations: its colour map's PSNR, r"
    )
    parser.add_argument(
        "--benchmark", choices=tuple(BENCHMARKS), default="realistic", help="the refine runs' benchmark"
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
    for case in (HELD_OUT if args.held_out else CASES)[args.skip : args.skip + args.cases]:
        for benchmark, scale in (
            BENCHMARKS.items() if args.runs != "refine" else [(args.benchmark, BENCHMARKS[args.benchmark])]
        ):
            with tempfile.TemporaryDirectory() as folder:
                problem = make_sequence_problem(folder, case, 3, scale)
                closest = replace(problem, initial=problem.closest)
                if args.runs == "closed":
                    for smoothing in args.smoothing:
                        row = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "case": case.key}
                        row.update(benchmark=benchmark, start=CLOSED)
                        psnr = albedo_floor(problem, base.texture_size, smoothing=smoothing)
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
                if args.start != "both":
                    variants = {k: v for k, v in variants.items() if k.startswith(args.start)}
                albedo = "optimised" if args.runs == "start" else args.albedo
                for start, (posed, schedule) in variants.items():
                    settings = replace(
                        base,
                        schedule=capped(schedule, args.levels),
                        albedo=albedo,
                        # the consistent light needs the albedo estimated again under it
                        light_estimate="optimised" if albedo == "optimised" else args.light,
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
                        "texture_psnr_seen_floor": round(
                            albedo_floor(problem, settings.texture_size, result.seen, settings.albedo_smoothing), 2
                        ),
                        "albedo": settings.albedo,
                        "albedo_smoothing": settings.albedo_smoothing,
                        "background": settings.background,
                        "plate_margin": round(settings.plate_margin, 4),
                        "relight_psnr_overlap": round(relit.psnr, 2),
                        "light_direction_error_deg": round(record["light_direction_error_deg"], 1),
                        "seconds": round(record["seconds"], 1),
                        "energy": round(result.history[result.best_iteration]["E"], 1),
                        "light_estimate": settings.light_estimate,
                        "fingers_after_mm": fingers(posed, result.params),
                        "fingers_closest_mm": fingers(posed, posed.closest),
                    }
                    # the image energy under this run's appearance, at its hand and at the closest
                    if settings.background == "plate":
                        for key, hands in (("image_energy", result.params), ("image_energy_closest", posed.closest)):
                            energies = data_energies(posed.model, posed.cameras, posed.images, hands, result, settings)
                            row[key] = round(sum(energies), 1)
                    if settings.light_estimate == "consistent":  # the same run under the optimiser's light
                        baked = closed_form_albedo(
                            posed,
                            result.params,
                            result.optimised_light,
                            result.colour_transforms,
                            settings.texture_size,
                            settings.albedo_smoothing,
                        )
                        other = baked.texture.clamp(0.0, 1.0)
                        paired = relight(posed, 0, result.params[0], other, new_light)
                        row.update(
                            optimised_light_error_deg=round(light_direction_error(posed, result.optimised_light), 1),
                            optimised_light_texture_psnr_seen=round(texture_psnr(posed, other, baked.seen), 2),
                            optimised_light_relight_psnr=round(paired.psnr, 2),
                        )
                    if args.smvr and start.startswith("annotations"):  # the paper's r, DMVR's texture over SMVR's
                        smvr_record, smvr_results = refine_video_per_frame(posed, SMVRSettings(texture_size=512))
                        colour_map = srgb_decode(smvr_results[0].texture)  # frame 0's, as the chapter shows it
                        row.update(
                            smvr_eps_v_after=round(smvr_record["eps_v_after"], 3),
                            smvr_texture_psnr=round(smvr_record["texture_psnr"], 2),
                            smvr_texture_psnr_seen=round(texture_psnr(posed, colour_map, result.seen), 2),
                        )
                    print(row, flush=True)
                    rows.append(row)
    append_rows(args.csv, rows)


if __name__ == "__main__":
    main()
