"""Two interacting hands: joint against separate refinement (handlib.experiments.pairs).

Each case is one synthetic frame of an interaction (handlib.data.interacting) drawn from a seed,
both hands 5 mm off, refined by SMVR; with ``--video N`` it is a video of N frames (the left hand
coming into the interaction) refined by DMVR. ``--sweep`` runs only the joint refinement at
several weights of the interpenetration term on the development seed (0); the default compares
initial / truth / separate / joint on held-out seeds (1 and up, used for nothing else). Rows are
appended to ``benchmarks/two_hands.csv`` (videos: ``two_hands_video.csv``).

    python benchmarks/two_hands.py --sweep                 # dev seed 0: weights 0, 1e-3, 1e-2
    python benchmarks/two_hands.py --sweep --cameras 2 --interactions palm_on_palm clasp
    python benchmarks/two_hands.py --seeds 1               # every interaction, seed 1
    python benchmarks/two_hands.py --seeds 1 2 --fraction 0.5
    python benchmarks/two_hands.py --video 3 --cameras 4 --sweep --interactions clasp fist_in_palm
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import append_rows, machine  # noqa: E402  (shared with the renderer benchmark)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--interactions", nargs="+", default=None, help="default: all")
    parser.add_argument("--cameras", type=int, default=6)
    parser.add_argument("--fraction", type=float, default=None, help="of the schedule (SMVR: 0.25; DMVR: 0.5)")
    parser.add_argument("--sweep", action="store_true", help="dev seed 0, joint only, several weights")
    parser.add_argument("--video", type=int, default=0, help="frames of a video refined by DMVR (0: SMVR frames)")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    if args.video:
        videos(args)
    else:
        frames(args)


def record(found: list[dict], weight: float, settings, cameras: int, csv: Path) -> None:
    """Print the comparison's rows and append them to ``csv`` with the run's settings and machine."""
    import handlib

    rows = [
        {
            **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
            "penetration_weight": weight,
            "cameras": cameras,
            "iterations": sum(s.iterations for s in settings.schedule),
            "handlib": handlib.__version__,
            "machine": machine(),
        }
        for row in found
    ]
    for row in rows:
        print(
            f"{row['interaction']:<13} seed {row['seed']} w {weight:<6g} {row['method']:<9} eps_v"
            f" {row['eps_v_right']:.2f} / {row['eps_v_left']:.2f} mm, penetration {row['penetration_mm']:.2f} mm,"
            f" {row['intersection_mm3']:.0f} mm3, contact kept {row['contact_kept']:.2f}, {row['seconds']:.0f} s",
            flush=True,
        )
    append_rows(csv, rows)


def frames(args) -> None:
    from handlib.data.interacting import INTERACTIONS, PairSettings, draw_pair
    from handlib.experiments.pairs import compare
    from handlib.methods.schedule import SMVR_SCHEDULE, scaled
    from handlib.methods.smvr import SMVRSettings

    base = SMVRSettings(schedule=scaled(SMVR_SCHEDULE, args.fraction or 0.25), texture_size=256)
    seeds, weights, methods = args.seeds, [base.penetration_weight], ("initial", "truth", "separate", "joint")
    if args.sweep:
        seeds, weights, methods = [0], [0.0, 1e-3, 1e-2], ("joint",)
    for seed in seeds:
        for name in args.interactions or list(INTERACTIONS):
            frame = draw_pair(name, seed, PairSettings(cameras=args.cameras, texture_size=256))
            for weight in weights:
                settings = dataclasses.replace(base, penetration_weight=weight)
                found = compare(frame, settings, methods)[0]
                record(found, weight, settings, args.cameras, Path(args.csv or Path(__file__).with_suffix(".csv")))


def videos(args) -> None:
    from handlib.data.interacting import INTERACTIONS, PairSettings, draw_pair_video
    from handlib.experiments.pairs import compare_video
    from handlib.methods.dmvr import DMVRSettings
    from handlib.methods.schedule import DMVR_SCHEDULE, scaled

    base = DMVRSettings(schedule=scaled(DMVR_SCHEDULE, args.fraction or 0.5), texture_size=256, lod_levels=6)
    seeds, weights, methods = args.seeds, [base.penetration_weight], ("initial", "truth", "separate", "joint")
    if args.sweep:
        seeds, weights, methods = [0], [0.0, 1.0, 10.0, 100.0], ("joint",)
    csv = Path(args.csv or Path(__file__).with_name("two_hands_video.csv"))
    for seed in seeds:
        for name in args.interactions or list(INTERACTIONS):
            video = draw_pair_video(name, seed, args.video, PairSettings(cameras=args.cameras, texture_size=256))
            for weight in weights:
                settings = dataclasses.replace(base, penetration_weight=weight)
                record(compare_video(video, settings, methods)[0], weight, settings, args.cameras, csv)


if __name__ == "__main__":
    main()
