"""DMVR memory and time per iteration against the video's length.

DMVR accumulates gradients frame by frame, so its peak memory should not grow with the
number of frames T. For each (frames, cameras) it synthesises a video at InterHand2.6M's
334x512 (in a fresh process, so the peak is that configuration's own), runs a few
iterations of the full stage (everything optimised), and reports the peak resident memory
(and the GPU's peak, on CUDA) and the seconds per iteration. Rows are printed and appended
to a CSV (default ``benchmarks/dmvr_memory.csv``); compare rows of one run (ratios), not
runs of different days.

    python benchmarks/dmvr_memory.py                          # T = 1 and 10 with 16 cameras
    python benchmarks/dmvr_memory.py --frames 1 3 --cameras 4
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
from render import append_rows, in_child, machine  # noqa: E402  (the same machine description as the renderer benchmark)


def run_one(config: dict) -> dict:
    """Measure one configuration (called in a child process)."""
    import torch

    import handlib
    from handlib.experiments.study import Case, Scale, make_sequence_problem
    from handlib.methods.dmvr import DMVRSettings, refine_sequence
    from handlib.methods.schedule import DMVR_GROUPS, Stage

    problem = make_sequence_problem(
        tempfile.mkdtemp(),
        Case("ok", 7, noise_mm=10.0),
        config["frames"],
        Scale(cameras=config["cameras"], shrink=1, spp=4, texture_size=256),
    )
    settings = DMVRSettings(schedule=(Stage(DMVR_GROUPS, config["iterations"]),), texture_size=1024, lod_levels=8)
    start = time.perf_counter()
    result = refine_sequence(problem.model, problem.cameras, problem.images, problem.initial, problem.times, settings)
    seconds = (time.perf_counter() - start) / config["iterations"]
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    return {
        **config,
        "variant": handlib.VARIANT,
        "seconds_per_iteration": round(seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_gpu_torch_mb": round(gpu, 1),
        "diverged": result.diverged,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--cameras", type=int, nargs="+", default=[16])
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--csv", type=Path, default=Path(__file__).with_name("dmvr_memory.csv"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return
    rows = []
    for cameras in args.cameras:
        for frames in args.frames:
            config = {"frames": frames, "cameras": cameras, "iterations": args.iterations}
            measured = in_child(__file__, config)  # its own process: its peak memory is its own
            if measured is None:
                raise SystemExit(f"the run {config} failed (its error is above)")
            row = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), **measured}
            rows.append(row)
            print(
                f"{frames:3d} frames x {cameras:2d} cameras: {row['seconds_per_iteration']:7.2f} s/iteration, "
                f"peak RSS {row['peak_rss_mb']:8.1f} MB, torch GPU peak {row['peak_gpu_torch_mb']:7.1f} MB",
                flush=True,
            )
    first, last = rows[0], rows[-1]
    if first["cameras"] == last["cameras"] and first["frames"] != last["frames"]:
        print(
            f"memory ratio {last['frames']} / {first['frames']} frames: "
            f"{last['peak_rss_mb'] / first['peak_rss_mb']:.2f} "
            f"(time ratio {last['seconds_per_iteration'] / first['seconds_per_iteration']:.2f})"
        )
    append_rows(args.csv, rows)


if __name__ == "__main__":
    main()
