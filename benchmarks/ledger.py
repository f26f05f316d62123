"""Adding a run's tasks to the ledger: one transaction (what ``Ledger.add`` does) against SQLite's
autocommit, where every row is its own transaction and disk sync (what it did before 0.2).

    .venv/bin/python benchmarks/ledger.py --tasks 3000    # appends to ledger.csv
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from render import append_rows, machine  # noqa: E402

from handlib.pipeline.dataset import Ledger  # noqa: E402
from handlib.pipeline.refine import Unit  # noqa: E402


def per_row(path: Path, units: list[Unit]) -> float:
    """The same rows through an autocommit connection, one transaction (and sync) per row."""
    Ledger(path, {"benchmark": 1}).close()  # same schema and settings
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=FULL")
    start = time.perf_counter()
    db.executemany(
        "INSERT OR IGNORE INTO tasks VALUES (?, ?, ?, 'pending', '', '', 0, ?)",
        [(u.key, i, json.dumps(asdict(u)), time.time()) for i, u in enumerate(units)],
    )
    seconds = time.perf_counter() - start
    db.close()
    return seconds


def batched(path: Path, units: list[Unit]) -> float:
    ledger = Ledger(path, {"benchmark": 1})
    start = time.perf_counter()
    ledger.add(units)
    seconds = time.perf_counter() - start
    ledger.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=3000)
    args = parser.parse_args()
    units = [Unit(0, "ROM01", "right", (frame,)) for frame in range(args.tasks)]
    with tempfile.TemporaryDirectory() as folder:
        old = per_row(Path(folder) / "per_row.sqlite", units)
        new = batched(Path(folder) / "batched.sqlite", units)
    print(
        f"{args.tasks} tasks: one transaction per row {old:.3f} s, one transaction {new:.3f} s, ratio {old / new:.0f}"
    )
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    append_rows(
        HERE / "ledger.csv",
        [
            {
                "date": stamp,
                "machine": machine(),
                "tasks": args.tasks,
                "per_row_s": round(old, 4),
                "one_transaction_s": round(new, 4),
                "ratio": round(old / new, 1),
            }
        ],
    )


if __name__ == "__main__":
    main()
