"""Spread of the quantities the Monte Carlo tests bound, over seeds: where each bound sits in it.

A test of a Monte Carlo renderer or optimiser runs with fixed seeds, but Dr.Jit's parallel sums
are not bit-reproducible, so a run may land anywhere in the seed-to-seed spread. This script runs
each bounded check with several seeds and prints mean, standard deviation, worst case and the
margin of the test's bound in standard deviations; the rows go to ``test_margins.csv``.

    .venv/bin/python benchmarks/test_margins.py --seeds 8          # everything, ~15 min on 2 cores
    .venv/bin/python benchmarks/test_margins.py --only gradients   # or smvr, dmvr, edges
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from render import append_rows, machine  # noqa: E402


def summarise(name: str, values: list[float], bound: float, above: bool) -> dict:
    """``above``: the test asserts value > bound (else value < bound)."""
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    worst = min(values) if above else max(values)
    margin = (mean - bound) / sd if above else (bound - mean) / sd
    print(f"{name:34s} mean {mean:+.4f} sd {sd:.4f} worst {worst:+.4f} bound {bound:+.4f} margin {margin:5.1f} sd")
    return {
        "check": name,
        "seeds": len(values),
        "mean": round(mean, 5),
        "sd": round(sd, 5),
        "worst": round(worst, 5),
        "bound": bound,
        "margin_sd": round(margin, 2),
        "values": " ".join(f"{v:.4f}" for v in values),
    }


def gradients(seeds: int) -> list[dict]:
    import test_render_gradients as trg

    from handlib.model.hand import HandModel

    model = HandModel("right", flat_hand_mean=True)
    setup = trg.make_setup(model)
    rows = []
    for name, build in trg.CHECKS.items():
        case = build(setup, model)
        errors = []
        for offset in range(seeds):
            gradient, fd = trg.gradient_and_fd(case, seed_offset=1000 * offset)
            errors.append(abs(gradient - fd) / abs(fd))
        rows.append(summarise(f"gradient {name} |g-fd|/|fd|", errors, trg.TOLERANCE[case.mode], above=False))
    return rows


def smvr(seeds: int, folder: Path) -> list[dict]:
    import test_smvr

    case = test_smvr.smoke_frame(folder / "smvr")
    ratios, backprojection = [], []
    for seed in range(seeds):
        before, after, result = test_smvr.smoke_refinement(case, seed)
        ratios.append(after / before)
        backprojection.append(result.history[-1]["backprojection"] / result.history[0]["backprojection"])
    return [
        summarise("smvr smoke after/before", ratios, 0.85, above=False),
        summarise("smvr smoke backprojection last/first", backprojection, 1.05, above=False),
    ]


def dmvr(seeds: int, folder: Path) -> list[dict]:
    import test_dmvr

    problem = test_dmvr.smoke_video(folder / "dmvr")
    ratios = []
    for seed in range(seeds):
        before, after, _ = test_dmvr.smoke_video_refinement(problem, seed)
        ratios.append(after / before)
    return [summarise("dmvr smoke after/before", ratios, 0.85, above=False)]


def edges(seeds: int, folder: Path) -> list[dict]:
    import test_dmvr

    problem = test_dmvr.edge_problem(folder / "edges")
    fractions = []
    for seed in range(1, seeds + 1):
        outline, differing = test_dmvr.edge_disagreement(problem, seed)
        fractions.append(differing / outline)
    return [summarise("edges 4 spp differing/outline", fractions, 0.45, above=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--only", nargs="*", default=["gradients", "smvr", "dmvr", "edges"])
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for part in args.only:
            if part == "gradients":
                rows += gradients(args.seeds)
            else:
                rows += {"smvr": smvr, "dmvr": dmvr, "edges": edges}[part](args.seeds, Path(folder))
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    append_rows(HERE / "test_margins.csv", [{"date": stamp, "machine": machine(), **row} for row in rows])
    print(f"{time.perf_counter() - started:.0f} s; appended {len(rows)} rows to {HERE / 'test_margins.csv'}")


if __name__ == "__main__":
    main()
