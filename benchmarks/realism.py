"""SMVR on the idealised and on the realistic benchmark, the same cases side by side.

Each case (a gesture, a subject, 5 mm of initial error) is synthesised twice: as a hand of the
fitted model in perfect images (``ideal``) and as a hand outside the model's span in degraded
images (``realistic``: handlib.data.mismatch and handlib.data.realism at their defaults). SMVR
refines both with its full schedule; rows hold eps_v before / after / floor, eps_j, the
backprojection error and seconds, and are appended to ``benchmarks/realism.csv``. The subjects
are ones no notebook uses.

    python benchmarks/realism.py                  # 6 cases x 2 benchmarks, 8 cameras at 1/4 size
    python benchmarks/realism.py --cases 2 --iterations 60
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import append_rows, machine  # noqa: E402  (shared with the renderer benchmark)

GESTURES = ("horns", "fist", "ok", "point", "open", "peace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--shrink", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=0, help="shorten SMVR's 230-iteration schedule to this")
    parser.add_argument("--csv", default=str(Path(__file__).with_suffix(".csv")))
    args = parser.parse_args()

    import handlib
    from handlib.experiments.study import Case, Scale, make_problem, refine_problem
    from handlib.methods.schedule import SMVR_SCHEDULE
    from handlib.methods.smvr import SMVRSettings

    schedule = SMVR_SCHEDULE
    if args.iterations:
        total = sum(stage.iterations for stage in schedule)
        schedule = tuple(
            dataclasses.replace(s, iterations=max(1, s.iterations * args.iterations // total)) for s in schedule
        )
    ideal = Scale(cameras=args.cameras, shrink=args.shrink, spp=16, texture_size=512)
    root = tempfile.mkdtemp()
    rows = []
    for k in range(args.cases):
        case = Case(GESTURES[k % len(GESTURES)], 900 + k, noise_mm=5.0)
        for scale in (ideal, ideal.realistic()):
            record, _ = refine_problem(make_problem(root, case, scale), SMVRSettings(schedule=schedule))
            row = {
                "benchmark": scale.benchmark,
                **{key: record[key] for key in ("case", "cameras", "loss", "iterations", "seconds")},
                **{key: round(record[key], 4) for key in record if key.startswith(("eps_", "backprojection"))},
                "shrink": args.shrink,
                "handlib": handlib.__version__,
                "machine": machine(),
            }
            rows.append(row)
            print(
                f"{row['case']:<22} {row['benchmark']:<9} eps_v {row['eps_v_before']:.2f} -> {row['eps_v_after']:.2f}"
                f" mm (floor {row['eps_v_floor']:.2f}), eps_j {row['eps_j_before']:.2f} -> {row['eps_j_after']:.2f},"
                f" {row['seconds']:.0f} s",
                flush=True,
            )
    append_rows(Path(args.csv), rows)
    for name in ("ideal", "realistic"):
        chosen = [r for r in rows if r["benchmark"] == name]
        before = sum(r["eps_v_before"] for r in chosen) / len(chosen)
        after = sum(r["eps_v_after"] for r in chosen) / len(chosen)
        floor = sum(r["eps_v_floor"] for r in chosen) / len(chosen)
        print(f"{name}: mean eps_v {before:.2f} -> {after:.2f} mm, floor {floor:.2f} mm ({len(chosen)} cases)")


if __name__ == "__main__":
    main()
