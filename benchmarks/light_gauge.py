"""DMVR's light gauge: the paper's free SH light (12 coefficients, colour included) against handlib's
grey gauge (the light's mean fixed white, its other coefficients grey), on development videos that
no notebook uses. Prints, and appends to ``light_gauge.csv``, per case and gauge: eps_v before and
after, the texture's robust PSNR against the true skin (after the best 3x4 colour transform, over the
hand's texels and over those some camera saw), the angle between the recovered and the true light's
dominant directions, and how far the recovered light's colour strays from grey.

    .venv/bin/python benchmarks/light_gauge.py              # 3 cases, about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from render import append_rows, machine  # noqa: E402

from handlib.experiments.study import Case, Scale, make_sequence_problem, refine_video  # noqa: E402
from handlib.methods.dmvr import DMVRSettings  # noqa: E402
from handlib.methods.schedule import DMVR_SCHEDULE, scaled  # noqa: E402

CASES = [Case("horns", 7, noise_mm=8.0), Case("fist", 13, noise_mm=8.0), Case("open", 29, noise_mm=8.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedule", type=float, default=0.5, help="fraction of DMVR's schedule")
    parser.add_argument("--cases", type=int, default=len(CASES))
    parser.add_argument("--csv", type=Path, default=HERE / "light_gauge.csv")
    args = parser.parse_args()
    scale = Scale(cameras=4, shrink=4, spp=16, texture_size=512, directional_light=0.4, colour_response=0.03)
    base = DMVRSettings(schedule=scaled(DMVR_SCHEDULE, args.schedule), texture_size=256, lod_levels=6)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for case in CASES[: args.cases]:
            problem = make_sequence_problem(folder, case, 2, scale)
            for gauge in ("free", "grey"):
                record, result = refine_video(problem, replace(base, light_gauge=gauge))
                light = result.light
                spread = float((light - light.mean(1, keepdim=True)).abs().max() / light[0].abs().mean())
                row = {
                    "date": time.strftime("%Y-%m-%d %H:%M"),
                    "machine": machine(),
                    "case": case.key,
                    "gauge": gauge,
                    "iterations": record["iterations"],
                    "eps_v_before": round(record["eps_v_before"], 3),
                    "eps_v_after": round(record["eps_v_after"], 3),
                    "texture_psnr": round(record["texture_psnr"], 2),
                    "texture_psnr_seen": round(record["texture_psnr_seen"], 2),
                    "light_direction_error_deg": round(record["light_direction_error_deg"], 1),
                    "light_colour_spread": round(spread, 4),
                    "seconds": round(record["seconds"], 1),
                }
                print(row)
                rows.append(row)
    append_rows(args.csv, rows)


if __name__ == "__main__":
    main()
