"""The curator's report: built from real refine-dataset runs (SMVR, and DMVR for the texture and
light), read in headless Chromium; partial runs, a camera that disagrees, hostile names."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import shutil
import sqlite3
import threading
from pathlib import Path

import cv2
import pytest
from browser import CHROMIUM, open_in_chromium

from handlib import cli
from handlib.data.synth import SynthSettings, synthesize
from handlib.pipeline.report import (
    STANDOUT,
    ReportSettings,
    Run,
    camera_rows,
    frame_rows,
    pick_frames,
    read_run,
    write_report,
)

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || (e.target && e.target.src) || e)), true);
window.__blocked = [];
window.addEventListener('securitypolicyviolation', e => window.__blocked.push(e.blockedURI));
window.addEventListener('load', () => {  // what a page must not do: reach a server (a local one listens)
  new Image().src = 'http://127.0.0.1:PORT/image.png';
  fetch('http://127.0.0.1:PORT/data.json').catch(() => null);
});
window.addEventListener('load', () => setTimeout(() => {
  const rows = name => document.querySelectorAll('#table-' + name + ' tbody tr').length;
  const tables = Object.fromEntries(['sequences', 'captures', 'cameras', 'reasons', 'frames'].map(n => [n, rows(n)]));
  const after = () => Array.from(document.querySelectorAll('#table-frames tbody tr'))
    .map(tr => parseFloat(tr.children[6].textContent)).filter(v => !isNaN(v));
  const descending = after();
  const header = Array.from(document.querySelectorAll('#table-frames th'))
    .find(th => th.textContent.startsWith('error after'));
  header.click();
  const ascending = after();
  const report = document.createElement('pre');
  report.id = 'handlib-check';
  report.textContent = JSON.stringify({
    errors: window.__errors, tables, descending, ascending,
    overlays: Array.from(document.querySelectorAll('img.overlay')).map(i => i.complete && i.naturalWidth > 0),
    links: Array.from(document.querySelectorAll('#worst a, #best a')).map(a => a.getAttribute('href')),
    plots: document.querySelectorAll('.plot.js-plotly-plot').length,
    blocked: window.__blocked,
    sources: Array.from(document.querySelectorAll('img, script[src], link[href], iframe')).map(e => e.src || e.href),
    ready: document.getElementById('ready').dataset.done || '',
    text: document.body.innerText});
  document.body.appendChild(report);
}, 3000));
</script>"""


@contextlib.contextmanager
def listening():
    """A local HTTP server on a free port: (port, the paths requested from it)."""
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requests
    finally:
        server.shutdown()


SETTINGS = dict(cameras=2, gestures=("open", "fist"), subjects=2, frames=2, shrink=8, spp=2, texture_size=32, seed=8)


def refine_dataset(data: Path, out: Path, method: str, scale: str, *extra: str) -> None:
    argv = ["refine-dataset", "--data", str(data), "--out", str(out), "--method", method]
    argv += ["--schedule-scale", scale, "--spp", "2", "--workers", "2", "--threads", "1", *extra]
    assert cli.main(argv) == 0


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """2 captures x 2 frames, 2 cameras of 41x64, with the synthetic ground truth."""
    return synthesize(tmp_path_factory.mktemp("report") / "data", SynthSettings(**SETTINGS), progress=False)


@pytest.fixture(scope="module")
def smvr_run(data) -> Path:
    out = data.parent / "smvr"
    refine_dataset(data, out, "smvr", "0.05")
    return out


def test_report_lists_the_run_and_draws_the_chosen_frames(smvr_run):
    page = smvr_run / "report" / "index.html"
    text = page.read_text(encoding="utf-8")
    assert "handlib refine-dataset --data" in text  # the command as typed
    assert "The run is complete." in text and "What is missing" not in text
    run_rows = frame_rows(read_run(smvr_run))
    worst, best = pick_frames(run_rows, ReportSettings().shown)
    assert len(worst) == len(best) == 4  # all four frames, each list capped by the run's size
    assert worst[0]["after"] == max(r["after"] for r in run_rows)
    drop = [r["before"] - r["after"] for r in run_rows]
    assert best[0]["before"] - best[0]["after"] == max(drop)
    overlays = sorted((smvr_run / "report" / "overlays").glob("*_full.jpg"))
    assert len(overlays) == 4 * 2  # each frame once, in both cameras
    image = cv2.imread(str(overlays[0]))
    assert image.shape[:2] == (128, 82)  # the 41x64 image, doubled
    # both outlines are drawn: red (input) and blue (published) pixels
    b, g, r = (image[..., k].astype(int) for k in range(3))
    assert ((r > 150) & (g < 90) & (b < 90)).sum() > 10 and ((b > 150) & (r < 100)).sum() > 10


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (make test installs Debian's chromium)")
def test_report_works_offline_in_chromium(smvr_run):
    with listening() as (port, requests):
        found = open_in_chromium(smvr_run / "report" / "index.html", PROBE.replace("PORT", str(port)))
    assert requests == [] and len(found["blocked"]) == 2  # the page's policy stopped both probes
    assert found["errors"] == []
    assert found["ready"] == "yes"
    rows = frame_rows(read_run(smvr_run))
    reasons = len({r["flag"] for r in rows if r["status"] == "kept input"})  # the guard may keep a frame
    assert found["tables"] == {"sequences": 2, "captures": 2, "cameras": 4, "reasons": reasons, "frames": 4}
    assert len(found["overlays"]) == 2 * 4 * 2 and all(found["overlays"])  # worst 4 and best 4, 2 cameras each
    assert all(re.fullmatch(r"overlays/\d+_full\.jpg", link) for link in found["links"])
    assert found["plots"] == 2  # backprojection, and eps_v against the synthetic truth
    assert found["descending"] == sorted(found["descending"], reverse=True) and len(found["descending"]) == 4
    assert found["ascending"] == sorted(found["descending"])  # a click on the header sorted it the other way
    assert found["sources"] and all(url.startswith("file:") for url in found["sources"])  # all it loads lies beside it
    assert "floor" in found["text"] and "Invocations" in found["text"]


def test_a_partial_run_says_what_is_missing(smvr_run, tmp_path):
    out = tmp_path / "partial"
    out.mkdir()
    shutil.copy(smvr_run / "ledger.sqlite", out)
    with sqlite3.connect(out / "ledger.sqlite") as db:
        keys = [k for (k,) in db.execute("SELECT key FROM tasks ORDER BY position")]
        db.execute("UPDATE tasks SET status = 'pending', result = '' WHERE key = ?", (keys[0],))
        db.execute(
            "UPDATE tasks SET status = 'failed', result = '', reason = 'bad input: test' WHERE key = ?", (keys[1],)
        )
        db.execute("UPDATE invocations SET finished = NULL")
    text = write_report(out, ReportSettings(shown=1)).read_text(encoding="utf-8")
    assert f"1 of {len(keys)} task(s) not finished" in text and keys[0] in text
    assert "the merged dataset is not written yet" in text
    assert "This report is partial" in text
    data = json.loads(re.search(r'id="report-data" type="application/json">(.*?)</script>', text, re.S).group(1))
    frames = next(t for t in data["tables"] if t["name"] == "frames")["data"]
    statuses = frames["status"]
    assert statuses.count("failed") == statuses.count("not run yet") == 1
    assert {s for s in statuses if s not in ("failed", "not run yet")} <= {"refined", "kept input"}
    reasons = next(t for t in data["tables"] if t["name"] == "reasons")["data"]
    failed = reasons["reason"].index("bad input: test")
    assert reasons["status"][failed] == "failed" and reasons["frames"][failed] == 1
    assert len(list((out / "report" / "overlays").glob("*_full.jpg"))) <= 2 * 2


def fake_run(cameras: dict[str, float], frames: int = 6, seq: str = "ROM01", reason: str = "") -> Run:
    """A ledger's content without a refinement: camera -> error factor, one SMVR task per frame."""
    from handlib.pipeline.refine import Unit

    tasks = []
    for f in range(frames):
        metrics = {
            "frame": f,
            "backprojection_before": 10.0 + f,
            "backprojection_after": 8.0 + f,
            "kept_input": bool(reason) and f == 0,
            "flag": reason if f == 0 else "",
            "cameras": {name: [factor * (10.0 + f), factor * (8.0 + f)] for name, factor in cameras.items()},
        }
        unit = Unit(0, seq, "right", (f,))
        tasks.append(
            {
                "key": unit.key,
                "unit": unit,
                "status": "done",
                "reason": "",
                "attempts": 1,
                "result": {"frames": [metrics]},
            }
        )
    return Run(Path("/nonexistent"), {}, [], tasks)


def test_a_camera_that_disagrees_stands_out():
    rows = frame_rows(fake_run({"400001": 1.0, "400002": 1.1, "400003": 0.95, "400004": 2.0}))
    table = camera_rows(rows)
    assert [r["camera"] for r in table if r["stands_out"]] == ["400004"]
    assert table[0]["camera"] == "400004" and table[0]["ratio"] >= STANDOUT
    assert all(r["frames"] == 6 for r in table)


def test_hostile_names_stay_text(tmp_path):
    """Names and reasons come from files a user gives: they must not become markup or script."""
    from handlib.pipeline.report import render_page

    hostile = "</script><script>document.title='owned'</script>"
    run = fake_run({"<img src=x onerror=alert(1)>": 1.0}, frames=2, seq=hostile, reason="<b>kept</b>")
    run.out = tmp_path
    rows = frame_rows(run)
    worst, best = pick_frames(rows, 1)
    page = render_page(run, rows, worst, best, {}, [], False, ReportSettings())
    assert hostile not in page and "<img src=x" not in page and "<b>kept</b>" not in page
    data = json.loads(re.search(r'id="report-data" type="application/json">(.*?)</script>', page, re.S).group(1))
    frames = next(t for t in data["tables"] if t["name"] == "frames")["data"]
    assert frames["seq"] == [hostile, hostile] and frames["flag"][0] == "<b>kept</b>"  # shown as text, intact


@pytest.mark.slow
def test_dmvr_report_shows_texture_and_light(data, tmp_path):
    out = tmp_path / "dmvr"
    refine_dataset(data, out, "dmvr", "0.02", "--captures", "0")
    pictures = sorted((out / "report" / "appearance").glob("*.png"))
    assert [p.name for p in pictures] == ["0_light.png", "0_mask.png", "0_texture.png"]
    light = cv2.imread(str(pictures[0]))
    assert light.shape[:2] == (64, 128) and light.std() > 1.0  # a lit environment, not a flat image
    text = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert "Recovered texture and light (DMVR)" in text and 'src="appearance/0_texture.png"' in text
