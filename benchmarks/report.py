"""The curator's report of a large run: a generated ledger of ``--frames`` SMVR frames (8 cameras
each, 3% kept at their input, 0.5% in failed tasks), its report written, then opened in headless
Chromium: the page's size, how long it takes to be ready, and how long a sort (by the error before), a filter and a page
turn of the all-frames table take there.

    .venv/bin/python benchmarks/report.py --frames 100000    # appends to report.csv

The input dataset is absent, so the page has no overlays (their number is bounded by ``shown``, not
by the run's size: 2 x shown frames x cameras images, loaded lazily).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from render import append_rows, machine  # noqa: E402

from handlib.pipeline.dataset import LEDGER, Ledger  # noqa: E402
from handlib.pipeline.refine import Unit  # noqa: E402
from handlib.pipeline.report import write_report  # noqa: E402

CAMERAS = [f"4000{k:02d}" for k in range(8)]
# Run at the end of the body, right after the page's own script, in real time (Chromium's virtual
# time, which the tests use to wait, would stop the clock during synchronous work).
PROBE = """<script>
{
  const ready = Number(document.getElementById('ready').textContent);
  const timed = action => { const t = performance.now(); action(); return performance.now() - t; };
  const header = Array.from(document.querySelectorAll('#table-frames th'))
    .find(th => th.textContent === 'error before');
  const sort = timed(() => header.click());
  const next = timed(() => Array.from(document.querySelectorAll('#table-frames button'))
    .find(b => b.textContent === 'next').click());
  const input = document.getElementById('filter');
  const filter = timed(() => { input.value = 'ROM01'; input.dispatchEvent(new Event('input')); });
  const rows = document.querySelectorAll('#table-frames tbody tr').length;
  const pre = document.createElement('pre');
  pre.id = 'bench';
  pre.textContent = JSON.stringify({ready, sort, next, filter, rows});
  document.body.appendChild(pre);
}
</script>"""


def generate(out: Path, frames: int, seed: int = 0) -> None:
    """A finished-looking ledger of ``frames`` one-frame tasks over captures of 10 sequences."""
    rng = np.random.default_rng(seed)
    units = [Unit(f // 5000, f"ROM{(f // 500) % 10:02d}", "right", (f,)) for f in range(frames)]
    out.mkdir(parents=True)
    ledger = Ledger(out / LEDGER, {"data": str(out / "absent"), "split": "test", "options": {"mano": None}})
    ledger.finish(ledger.start("benchmarks/report.py"))
    ledger.add(units)
    before = rng.gamma(8.0, 1.5, frames)
    after = before * rng.uniform(0.7, 1.02, frames)
    camera_bias = rng.uniform(0.9, 1.1, len(CAMERAS))
    camera_bias[3] = 1.8  # one camera that disagrees
    rows = []
    for f, unit in enumerate(units):
        if rng.uniform() < 0.005:
            rows.append(("failed", "bad input: generated", "", unit.key))
            continue
        kept = after[f] > before[f]
        metrics = {
            "frame": f,
            "backprojection_before": before[f],
            "backprojection_after": after[f],
            "diverged": False,
            "kept_input": bool(kept),
            "flag": "backprojection rose" if kept else "",
            "cameras": {c: [before[f] * b, after[f] * b] for c, b in zip(CAMERAS, camera_bias)},
        }
        result = {"entries": {}, "frames": [metrics], "summary": {"seconds": 150.0}}
        rows.append(("done", "", json.dumps(result), unit.key))
    with ledger.transaction():
        ledger.db.executemany("UPDATE tasks SET status = ?, reason = ?, result = ?, attempts = 1 WHERE key = ?", rows)
    ledger.close()


def in_chromium(page: Path) -> dict:
    probe = page.with_name("_bench.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>", 1), encoding="utf-8")
    start = time.perf_counter()
    run = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"] + [probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - start
    found = re.search(r'<pre id="bench">(.*?)</pre>', run.stdout, re.S)
    if not found:
        raise RuntimeError(f"Chromium did not load the page: {run.stderr[-2000:]}")
    return {**json.loads(found.group(1).replace("&quot;", '"')), "chromium_wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--csv", type=Path, default=HERE / "report.csv")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out"
        start = time.perf_counter()
        generate(out, args.frames)
        generated = time.perf_counter() - start
        start = time.perf_counter()
        page = write_report(out)
        written = time.perf_counter() - start
        size = page.stat().st_size
        browser = in_chromium(page)
    row = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "frames": args.frames,
        "ledger_s": round(generated, 1),
        "report_s": round(written, 1),
        "page_mb": round(size / 2**20, 2),
        "ready_ms": round(browser["ready"]),
        "sort_ms": round(browser["sort"]),
        "next_page_ms": round(browser["next"]),
        "filter_ms": round(browser["filter"]),
        "rows_shown": browser["rows"],
        "chromium_wall_s": round(browser["chromium_wall_s"], 1),
    }
    print(row)
    append_rows(args.csv, [row])


if __name__ == "__main__":
    main()
