"""refine-dataset's wall time against the number of Dask workers, on one synthetic dataset.

Synthesises a small dataset (``--sequences`` captures of ``--frames`` frames), then refines
it with ``handlib refine-dataset`` once per worker count (each run in a fresh output folder,
the cluster's start included), with ``cores / workers`` threads per task. Prints the wall
times and the parallel efficiency ``t(1) / (n t(n))`` and appends rows to a CSV (default
``benchmarks/dataset_scaling.csv``). Compare the rows of one run (ratios), not runs of
different days.

    python benchmarks/dataset_scaling.py                       # 1 and 2 workers, SMVR
    python benchmarks/dataset_scaling.py --method dmvr --workers 1 2 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import append_rows, machine  # noqa: E402  (the same machine description as the renderer benchmark)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--method", default="smvr", choices=["smvr", "dmvr"])
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--schedule-scale", type=float, default=0.1)
    parser.add_argument("--csv", type=Path, default=Path(__file__).with_name("dataset_scaling.csv"))
    args = parser.parse_args()

    from handlib.data.synth import SynthSettings, synthesize
    from handlib.pipeline.dataset import Cluster, run_dataset
    from handlib.pipeline.refine import Options

    work = Path(tempfile.mkdtemp())
    data = synthesize(
        work / "data",
        SynthSettings(
            cameras=4,
            gestures=("open", "ok"),
            subjects=args.sequences,
            frames=args.frames,
            shrink=4,
            spp=4,
            texture_size=64,
            seed=11,
        ),
        progress=False,
    )
    options = Options(method=args.method, schedule_scale=args.schedule_scale, spp=4)
    rows = []
    for workers in args.workers:
        start = time.perf_counter()
        report = run_dataset(
            data,
            "test",
            work / f"out{workers}",
            options=options,
            cluster=Cluster(workers=workers),
            log=lambda line: None,
        )
        seconds = time.perf_counter() - start
        rows.append(
            {
                "machine": machine(),
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "cores": os.cpu_count(),
                "method": args.method,
                "tasks": report.done + len(report.failed),
                "workers": workers,
                "threads_per_task": Cluster(workers=workers).task_threads(),
                "seconds": round(seconds, 1),
            }
        )
        print(
            f"{workers} worker(s): {seconds:6.1f} s for {rows[-1]['tasks']} tasks ({len(report.failed)} failed)",
            flush=True,
        )
    base = rows[0]
    for row in rows[1:]:
        speedup = base["seconds"] / row["seconds"]
        row["efficiency"] = round(speedup * base["workers"] / row["workers"], 3)
        print(
            f"{row['workers']} vs {base['workers']} worker(s): speed-up {speedup:.2f}, "
            f"efficiency {row['efficiency']:.2f}"
        )
    base["efficiency"] = 1.0
    append_rows(args.csv, rows)


if __name__ == "__main__":
    main()
