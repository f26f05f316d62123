"""Whole refinements, the renderer's paths side by side in one run.

For each method it synthesises one problem (InterHand2.6M's layout, ``--shrink`` of its
resolution) and refines it in fresh processes, once per path (``--paths``, as in
``render.py``: ``traced``, one world scene and the background colour in the ray tracer;
``composite``, the same scene with a coverage render per view; ``per_camera``, each camera in
its own film space, composited: the path before the speed issue), timing the whole refinement
and reading the peak resident memory. SMVR refines one frame
with its full 230-iteration schedule unless ``--iterations`` shortens it; DMVR refines a video
(``--frames``) for ``--iterations`` of the full stage. Rows are printed with the speed-up and
appended to a CSV (default ``benchmarks/refine.csv``).

    python benchmarks/refine.py                                   # SMVR 8 cameras x 167x256 x 230
    python benchmarks/refine.py --methods dmvr --frames 3 --iterations 10
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import PATHS, append_rows, in_child, machine, path_of  # noqa: E402  (shared with the renderer benchmark)


def run_one(config: dict) -> dict:
    """Refine once (called in a child process)."""
    import dataclasses

    import torch

    import handlib
    from handlib.experiments.study import Case, Scale, make_problem, make_sequence_problem
    from handlib.methods import metrics
    from handlib.methods.schedule import DMVR_GROUPS, SMVR_SCHEDULE, Stage

    case = Case("ok", 7, noise_mm=5.0)
    scale = Scale(cameras=config["cameras"], shrink=config["shrink"], spp=4, texture_size=256)
    root = tempfile.mkdtemp()
    if config["method"] == "smvr":
        from handlib.methods.smvr import SMVRSettings, refine_frame

        problem = make_problem(root, case, scale)
        schedule = SMVR_SCHEDULE
        if config["iterations"]:
            total = sum(stage.iterations for stage in schedule)
            schedule = tuple(
                dataclasses.replace(s, iterations=max(1, s.iterations * config["iterations"] // total))
                for s in schedule
            )
        settings = SMVRSettings(schedule=schedule, layout=config["layout"], backdrop=config["backdrop"])
        start = time.perf_counter()
        result = refine_frame(
            problem.model,
            problem.cameras,
            problem.images,
            problem.initial,
            problem.joints,
            problem.joint_valid,
            settings,
            truth=problem.truth,
            progress=False,
        )
        seconds = time.perf_counter() - start
        iterations = sum(stage.iterations for stage in schedule)
        frames = 1
        with torch.no_grad():
            eps_v = metrics.vertex_error(problem.model(result.params).vertices[0], problem.truth.vertices)
    else:
        from handlib.methods.dmvr import DMVRSettings, refine_sequence

        problem = make_sequence_problem(root, case, config["frames"], scale)
        iterations = config["iterations"] or 10
        settings = DMVRSettings(
            schedule=(Stage(DMVR_GROUPS, iterations),),
            texture_size=512,
            lod_levels=6,
            layout=config["layout"],
            backdrop=config["backdrop"],
        )
        start = time.perf_counter()
        result = refine_sequence(
            problem.model, problem.cameras, problem.images, problem.initial, problem.times, settings
        )
        seconds = time.perf_counter() - start
        frames = config["frames"]
        eps_v = float("nan")
    return {
        **config,
        "variant": handlib.VARIANT,
        "machine": machine(),
        "total_iterations": iterations,
        "seconds": round(seconds, 2),
        "seconds_per_view_frame_iteration": round(seconds / (iterations * frames * config["cameras"]), 4),
        "eps_v_mm": round(float(eps_v), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["smvr"], choices=["smvr", "dmvr"])
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--shrink", type=int, default=2, help="image size: InterHand2.6M's / shrink (2: 167x256)")
    parser.add_argument("--frames", type=int, default=3, help="DMVR's video length")
    parser.add_argument("--iterations", type=int, default=0, help="0: SMVR's whole schedule, DMVR 10")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    parser.add_argument("--csv", type=Path, default=Path(__file__).with_name("refine.csv"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return
    rows = []
    for method in args.methods:
        for path in args.paths:
            layout, backdrop = PATHS[path]
            config = {
                "method": method,
                "layout": layout,
                "backdrop": backdrop,
                "cameras": args.cameras,
                "shrink": args.shrink,
                "frames": args.frames if method == "dmvr" else 1,
                "iterations": args.iterations,
            }
            row = in_child(__file__, config)
            if row is None:
                continue
            rows.append(row)
            append_rows(args.csv, [{"date": time.strftime("%Y-%m-%d %H:%M"), **row}])  # kept if a later run times out
            print(
                f"{method} {path:>10}: {row['seconds']:.1f} s ({row['total_iterations']} iterations x "
                f"{row['frames']} frames x {row['cameras']} cameras), "
                f"{row['seconds_per_view_frame_iteration']:.4f} s per camera x frame x iteration, "
                f"eps_v {row['eps_v_mm']} mm, peak {row['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    if not rows:
        return
    for method in args.methods:
        by_path = {path_of(r): r for r in rows if r["method"] == method}
        for path, row in by_path.items():
            if path != "per_camera" and "per_camera" in by_path:
                ratio = by_path["per_camera"]["seconds"] / row["seconds"]
                print(f"{method}: {path} {ratio:.2f}x faster than per_camera")


if __name__ == "__main__":
    main()
