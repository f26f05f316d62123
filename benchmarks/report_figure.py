"""The screenshots of the curator's report in ``figures/`` (``report_overview.png``, ``report_frames.png``):
a synthetic capture (2 subjects x 3 frames, 8 cameras of 167x256) whose camera 400005 is given a
calibration error (its principal point moved by (4, -3) pixels in the input), refined with SMVR at a
tenth of its schedule by ``handlib refine-dataset``, and its report shot in headless Chromium.

    .venv/bin/python benchmarks/report_figure.py    # about 3 minutes on 2 cores
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from handlib import cli
from handlib.data.interhand import annotation_path
from handlib.data.synth import SynthSettings, synthesize

FIGURES = Path(__file__).resolve().parents[1] / "figures"
MISCALIBRATED, SHIFT = "400005", (4.0, -3.0)
#: Per screenshot, the sections hidden so that the rest fits one image.
SHOTS = {
    "report_overview.png": ("#sequences", "#kept", "#frames", "#worst", "#best", "#appearance"),
    "report_frames.png": ("#run", "#distributions", "#sequences", "#cameras", "#kept", "#frames", "#best", ".legend"),
}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        data = synthesize(
            Path(folder) / "data",
            SynthSettings(cameras=8, subjects=2, frames=3, shrink=2, spp=8, texture_size=256, seed=21),
            progress=False,
        )
        path = annotation_path(data, "test", "camera")
        cameras = json.loads(path.read_text())
        for capture in cameras.values():
            capture["princpt"][MISCALIBRATED] = [v + s for v, s in zip(capture["princpt"][MISCALIBRATED], SHIFT)]
        path.write_text(json.dumps(cameras))
        out = Path(folder) / "refined"
        argv = ["refine-dataset", "--data", str(data), "--out", str(out), "--schedule-scale", "0.1", "--spp", "2"]
        cli.main(argv + ["--workers", "2", "--threads", "1"])
        page = out / "report" / "index.html"
        for name, hidden in SHOTS.items():
            shot = page.with_name(f"_{name}.html")
            style = f"<style>{', '.join(hidden)} {{ display: none; }}</style>"
            shot.write_text(page.read_text(encoding="utf-8").replace("</head>", style + "</head>", 1), encoding="utf-8")
            subprocess.run(
                ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
                + ["--virtual-time-budget=10000", "--window-size=1200,2000", f"--screenshot={FIGURES / name}"]
                + [shot.as_uri()],
                check=True,
                capture_output=True,
            )
            print(f"wrote {FIGURES / name}")


if __name__ == "__main__":
    sys.exit(main())
