"""The curator's report of a ``refine-dataset`` run: ``OUT/report/index.html``.

It reads only what the run wrote inside ``OUT`` (the ledger, the task folders) and, for the
overlays and the errors against a ground truth, the input dataset the ledger names (or the one
given). The page is one offline file: plotly.js and the tables' data are inside it, a content
security policy forbids any network request, and the overlay and texture images lie beside it
in ``OUT/report/``. It works on a partial run (still going, or killed) and says what is missing.

Cost: the overlays are drawn only for the ``shown`` worst and ``shown`` best frames, in every
camera (two model evaluations per frame, two outline fills per image), plus three model evaluations per
frame when the input has a ground truth; everything else is aggregation of the ledger.
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from handlib.data.interhand import SIDES
from handlib.pipeline.dataset import LEDGER, read_tasks, unit_folder

#: A camera "stands out" when its mean error after refinement is this many times its capture's median camera.
STANDOUT = 1.5
#: Outline colours, RGB: the input annotation and the published one.
BEFORE, AFTER = (230, 40, 40), (40, 110, 255)


@dataclass(frozen=True)
class ReportSettings:
    """How much the page shows: ``shown`` worst and best frames with overlays, thumbnails of at most
    ``thumbnail`` pixels, ``page_rows`` rows per page of a table; ``data`` replaces the input dataset
    the ledger names (when it has moved)."""

    shown: int = 5
    thumbnail: int = 160
    page_rows: int = 50
    data: str | None = None

    def __post_init__(self) -> None:
        if self.shown < 0 or self.thumbnail < 16 or self.page_rows < 1:
            raise ValueError("shown must be >= 0, thumbnail >= 16 pixels and page_rows >= 1.")


@dataclass
class Run:
    """What the ledger holds: the run's configuration, its invocations, one row per task."""

    out: Path
    config: dict
    invocations: list[dict]
    tasks: list[dict]
    missing: list[str] = field(default_factory=list)
    models: dict = field(default_factory=dict, repr=False)  # hand -> HandModel, loaded when first needed

    @cached_property
    def published(self) -> dict[tuple[int, int, str], dict]:
        """(capture, frame, hand) -> the annotation the run published for it (refined or kept)."""
        published = {}
        for task in self.tasks:
            if task["status"] == "done" and task["result"]:
                unit = task["unit"]
                for frame, entry in task["result"]["entries"].items():
                    # a task of both hands publishes {side: entry} per frame
                    for side, hand_entry in entry.items() if unit.hand == "both" else [(unit.hand, entry)]:
                        published[(unit.capture, int(frame), side)] = hand_entry
        return published

    def model(self, hand: str):
        """The hand model the run refined with (the open hand, or the MANO files it was given)."""
        from handlib.model.hand import HandModel

        if hand not in self.models:
            self.models[hand] = HandModel(hand, model_path=self.config.get("options", {}).get("mano"))
        return self.models[hand]


def read_run(out: str | Path) -> Run:
    """The ledger of ``out``, opened read-only (a run may still be writing it)."""
    out = Path(out).resolve()
    path = out / LEDGER
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {out} the --out folder of a handlib refine-dataset run?")
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"run", "tasks"} <= tables:
            raise ValueError(f"{path} is not a refine-dataset ledger (tables {sorted(tables)}).")
        stored = db.execute("SELECT value FROM run WHERE key = 'config'").fetchone()
        config = json.loads(stored[0]) if stored else {}
        invocations = []
        if "invocations" in tables:
            for started, finished, command, commit, machine in db.execute(
                "SELECT started, finished, command, commit_id, machine FROM invocations ORDER BY rowid"
            ):
                invocations.append(
                    {
                        "started": started,
                        "finished": finished,
                        "command": command,
                        "commit": commit,
                        "machine": json.loads(machine or "{}"),
                    }
                )
        tasks = read_tasks(db)
    except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: cannot read the ledger ({type(err).__name__}: {err}).") from None
    finally:
        db.close()
    run = Run(out, config, invocations, tasks)
    if not invocations:
        run.missing.append("the ledger predates the record of commands (no command, commit or machine)")
    return run


def frame_rows(run: Run) -> list[dict]:
    """One row per frame and hand of every task: its status, errors, the guard's flag and per-camera
    errors (a task of both hands has a row for each hand it refined, with the errors they share)."""
    rows = []
    for task in run.tasks:
        unit, result = task["unit"], task["result"]
        base = {"capture": unit.capture, "seq": unit.seq, "hand": unit.hand, "task": task["key"]}
        if task["status"] == "done" and result:
            sides = result["summary"].get("hands", list(SIDES)) if unit.hand == "both" else [unit.hand]
            for side, metrics in ((side, m) for m in result["frames"] for side in sides):
                before, after = _number(metrics["backprojection_before"]), _number(metrics["backprojection_after"])
                rows.append(
                    {
                        **base,
                        "hand": side,
                        "frame": int(metrics["frame"]),
                        "status": "kept input" if metrics["kept_input"] else "refined",
                        "before": before,
                        "after": after,
                        "flag": metrics.get("flag") or "",
                        "cameras": {c: [_number(v) for v in ba] for c, ba in metrics.get("cameras", {}).items()},
                    }
                )
        else:
            status = "failed" if task["status"] == "failed" else "not run yet"
            for frame in unit.frames:
                flag = task["reason"] if task["status"] == "failed" else ""
                rows.append(
                    {
                        **base,
                        "frame": frame,
                        "status": status,
                        "before": None,
                        "after": None,
                        "flag": flag,
                        "cameras": {},
                    }
                )
    return rows


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def group_rows(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    """Per distinct ``keys``: frame counts by status and mean errors (None where there are none)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    table = []
    for values, members in groups.items():
        done = [r for r in members if r["status"] in ("refined", "kept input")]
        before, after = _mean(r["before"] for r in done), _mean(r["after"] for r in done)
        entry = dict(zip(keys, values))
        entry.update(
            frames=len(members),
            refined=sum(r["status"] == "refined" for r in members),
            kept=sum(r["status"] == "kept input" for r in members),
            failed=sum(r["status"] == "failed" for r in members),
            before=before,
            after=after,
            change=None if before is None or after is None else 100.0 * (after - before) / before,
        )
        for name in ("eps_v_before", "eps_v_after", "eps_j_before", "eps_j_after"):
            if any(name in r for r in members):
                entry[name] = _mean(r.get(name) for r in done)
        table.append(entry)
    return table


def camera_rows(rows: list[dict]) -> list[dict]:
    """Per capture and camera: mean error before and after over the frames it saw, and its ratio to
    the capture's median camera after refinement (``STANDOUT`` or more: it stands out)."""
    seen: dict[tuple[int, str], list[list]] = {}
    for row in rows:
        for camera, (before, after) in row["cameras"].items():
            seen.setdefault((row["capture"], camera), []).append([before, after])
    table = [
        {
            "capture": capture,
            "camera": camera,
            "frames": len(values),
            "before": _mean(v[0] for v in values),
            "after": _mean(v[1] for v in values),
        }
        for (capture, camera), values in seen.items()
    ]
    for capture in {r["capture"] for r in table}:
        members = [r for r in table if r["capture"] == capture and r["after"] is not None]
        median = float(np.median([r["after"] for r in members])) if members else None
        for r in members:
            r["ratio"] = r["after"] / median if median else None
            r["stands_out"] = "yes" if r["ratio"] is not None and r["ratio"] >= STANDOUT else ""
    return sorted(table, key=lambda r: -(r.get("ratio") or 0.0))


def truth_errors(run: Run, rows: list[dict], data: Path) -> bool:
    """On a capture with a ``ground_truth/`` (synthetic ones have it): eps_v and eps_j (mm) of the
    input and of the published annotation, added to ``rows``; False without one."""
    import torch

    from handlib.data.interhand import annotation_path, load_json
    from handlib.data.synth import read_truths
    from handlib.methods.metrics import errors_against
    from handlib.model.hand import HandParams

    if not (data / "ground_truth" / "scene.json").is_file():
        return False
    try:
        truths = read_truths(data)
    except (OSError, ValueError):
        return False
    inputs = load_json(annotation_path(data, run.config.get("split", "test"), "MANO_NeuralAnnot"))
    for row in rows:
        if row["status"] not in ("refined", "kept input"):
            continue
        capture, frame, hand = row["capture"], row["frame"], row["hand"]
        try:
            truth = truths.get((int(capture), int(frame), hand))
            entries = [
                (inputs.get(str(capture)) or {}).get(str(frame), {}).get(hand),
                run.published.get((capture, frame, hand)),
            ]
            if truth is None or any(e is None for e in entries):
                continue
            params = [HandParams.from_interhand(e) for e in entries]
        except (ValueError, TypeError, AttributeError):
            continue
        with torch.no_grad():
            outputs = [run.model(hand)(p) for p in params]
        for name, output in zip(("before", "after"), outputs):
            row[f"eps_v_{name}"], row[f"eps_j_{name}"] = errors_against(output, truth)
    return True


def pick_frames(rows: list[dict], count: int) -> tuple[list[dict], list[dict]]:
    """The ``count`` worst frames (highest error after refinement) and best (largest drop)."""
    done = [r for r in rows if r["before"] is not None and r["after"] is not None]
    worst = sorted(done, key=lambda r: -r["after"])[:count]
    best = sorted(done, key=lambda r: r["after"] - r["before"])[:count]
    return worst, best


def draw_overlays(
    run: Run, chosen: list[dict], data: Path, folder: Path, settings: ReportSettings
) -> dict[tuple, list[dict]]:
    """Per chosen frame, per camera with an image: a full-size overlay (input outline red, published
    blue) and a thumbnail cropped to the hand, written into ``folder``; their names and errors."""
    import cv2
    import torch

    from handlib.data.interhand import InterHandReader
    from handlib.geometry.outline import mesh_box, outline_overlay
    from handlib.model.hand import HandParams

    reader = InterHandReader(data, run.config.get("split", "test"))
    drawn: dict[tuple, list[dict]] = {}
    written = 0
    folder.mkdir(parents=True, exist_ok=True)
    # JPEG without chroma subsampling, which would smear the thin coloured lines into each other
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    for row in chosen:
        key = (row["capture"], row["seq"], row["frame"], row["hand"])
        if key in drawn:
            continue
        frame = reader.frame(key[:3])
        entry = run.published.get((row["capture"], row["frame"], row["hand"]))
        if frame is None or entry is None or frame.mano.get(row["hand"]) is None:
            run.missing.append(f"overlays of {row['task']} frame {row['frame']}: frame or annotation not readable")
            continue
        hand = row["hand"]
        model = run.model(hand)
        with torch.no_grad():
            before = model(frame.hand_params(hand)).vertices[0].numpy()
            after = model(HandParams.from_interhand(entry)).vertices[0].numpy()
        faces = model.faces.numpy()
        images = []
        for camera in sorted(frame.image_paths):
            try:
                image = frame.image(camera)
            except ValueError as err:
                run.missing.append(f"overlay {row['task']} frame {row['frame']} camera {camera}: {err}")
                continue
            index, written = written, written + 1
            # the input's line is wider, so that it shows on both sides of the published one where they agree
            meshes = [(before, BEFORE, 5), (after, AFTER, 2)]
            full = outline_overlay(image, frame.cameras[camera], meshes, faces, upscale=2)
            x0, y0, x1, y1 = mesh_box(frame.cameras[camera], [before, after], margin=12)
            upscale = max(1, round(settings.thumbnail / max(x1 - x0, y1 - y0, 1)))
            crop = outline_overlay(image, frame.cameras[camera], meshes, faces, upscale=upscale, crop_margin=12)
            scale = settings.thumbnail / max(crop.shape[:2])
            if scale < 1:
                crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            for suffix, picture in (("full", full), ("thumb", crop)):
                cv2.imwrite(str(folder / f"{index}_{suffix}.jpg"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), jpeg)
            errors = row["cameras"].get(camera, [None, None])
            images.append({"camera": camera, "index": index, "before": errors[0], "after": errors[1]})
        drawn[key] = images
    return drawn


def appearance(run: Run, folder: Path) -> list[dict]:
    """DMVR tasks: the recovered texture and the SH light (as a lat-long image), copied into ``folder``."""
    import cv2
    import torch

    from handlib.rendering.colour import to_srgb8
    from handlib.rendering.lighting import latlong_image

    shown = []
    for task in run.tasks:
        if task["status"] != "done":
            continue
        try:
            source = unit_folder(run.out, task["unit"])
        except ValueError:
            continue
        texture, light = source / "texture.png", source / "environment.json"
        if not texture.is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        index = len(shown)
        picture = cv2.imread(str(texture), cv2.IMREAD_COLOR)
        if picture is None:
            run.missing.append(f"texture of {task['key']}: {texture} is not a readable image")
            continue
        scale = 256 / max(picture.shape[:2])
        if scale < 1:
            picture = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"{index}_texture.png"), picture)
        entry = {"task": task["key"], "index": index, "light": False, "mask": False}
        mask = cv2.imread(str(source / "visibility.png"), cv2.IMREAD_GRAYSCALE)
        if mask is not None:
            cv2.imwrite(
                str(folder / f"{index}_mask.png"), cv2.resize(mask, picture.shape[1::-1], interpolation=cv2.INTER_AREA)
            )
            entry["mask"] = True
        try:
            coefficients = torch.tensor(json.loads(light.read_text())["sh_coefficients"], dtype=torch.float64)
            image = latlong_image(coefficients, torch.eye(3, dtype=torch.float64), 64, 128).numpy()
            image = image / max(float(image.max()), 1e-9)  # exposure: the brightest direction is white
            cv2.imwrite(str(folder / f"{index}_light.png"), cv2.cvtColor(to_srgb8(image), cv2.COLOR_RGB2BGR))
            entry["light"] = True
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
            run.missing.append(f"light of {task['key']}: {type(err).__name__}: {err}")
        shown.append(entry)
    return shown


def write_report(out: str | Path, settings: ReportSettings = ReportSettings()) -> Path:
    """Write ``OUT/report/`` (replacing an earlier one whole) and return its ``index.html``."""
    run = read_run(out)
    rows = frame_rows(run)
    data = Path(settings.data or run.config.get("data", "")).resolve()
    have_data = bool(settings.data or run.config.get("data")) and (data / "annotations").is_dir()
    if not have_data:
        run.missing.append(f"the input dataset {data} is not there: no overlays, no errors against a ground truth")
    truth = have_data and truth_errors(run, rows, data)
    target = run.out / "report"
    staging = Path(tempfile.mkdtemp(prefix=".report-", suffix=".tmp", dir=run.out))
    try:
        worst, best = pick_frames(rows, settings.shown)
        overlays = draw_overlays(run, worst + best, data, staging / "overlays", settings) if have_data else {}
        textures = appearance(run, staging / "appearance")
        pending = [t["key"] for t in run.tasks if t["status"] == "pending"]
        if pending:
            run.missing.append(
                f"{len(pending)} of {len(run.tasks)} task(s) not finished (still running, or the run was "
                f"stopped: run the same command again to resume), e.g. {', '.join(pending[:3])}"
            )
        if not (run.out / "refinement" / "frames.csv").is_file():
            run.missing.append("the merged dataset is not written yet (the run writes it when its tasks end)")
        page = render_page(run, rows, worst, best, overlays, textures, truth, settings)
        (staging / "index.html").write_text(page, encoding="utf-8")
        os.chmod(staging, 0o755)
        if target.exists():
            old = run.out / f".report-old-{os.getpid()}.tmp"
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target / "index.html"


# ----------------------------------------------------------------------------------------------
# The page


def _columnar(rows: list[dict], keys: list[str]) -> dict:
    """Column lists of ``rows`` (numbers to 4 significant decimals, NaN and missing as null)."""

    def clean(value):
        if isinstance(value, float):
            return round(value, 3) if math.isfinite(value) else None
        return value

    return {key: [clean(r.get(key)) for r in rows] for key in keys}


def _table(name: str, rows: list[dict], columns: list[tuple[str, str, str]], sort: str, desc: bool) -> dict:
    """A table for the page's script: ``columns`` are (key, label, kind: text|int|num|pct)."""
    keys = [c[0] for c in columns]
    return {
        "name": name,
        "columns": [{"key": k, "label": label, "kind": kind} for k, label, kind in columns],
        "data": _columnar(rows, keys),
        "sort": sort,
        "desc": desc,
    }


def _script_json(value) -> str:
    """JSON that cannot close the script element it sits in."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds)) if seconds else "not finished"


def render_page(
    run: Run,
    rows: list[dict],
    worst: list[dict],
    best: list[dict],
    overlays: dict[tuple, list[dict]],
    textures: list[dict],
    truth: bool,
    settings: ReportSettings,
) -> str:
    """The page's HTML: every name and reason from the run escaped, the tables' data as JSON that
    cannot close its script element, plotly.js inline."""
    from plotly.offline import get_plotlyjs

    e = html.escape
    statuses = [t["status"] for t in run.tasks]
    frame_status = [r["status"] for r in rows]
    eps = [(f"eps_{k}_{t}", f"eps_{k} {t} (mm)", "num") for k in "vj" for t in ("before", "after")] if truth else []
    frame_columns = [
        ("capture", "capture", "int"),
        ("seq", "sequence", "text"),
        ("hand", "hand", "text"),
        ("frame", "frame", "int"),
        ("status", "status", "text"),
        ("before", "error before", "num"),
        ("after", "error after", "num"),
        *eps,
        ("flag", "kept or failed because", "text"),
    ]
    group_columns = [
        ("frames", "frames", "int"),
        ("refined", "refined", "int"),
        ("kept", "kept input", "int"),
        ("failed", "failed", "int"),
        ("before", "error before", "num"),
        ("after", "error after", "num"),
        ("change", "change %", "num"),
        *eps,
    ]
    reasons: dict[tuple[str, str], int] = {}
    for r in rows:
        if r["status"] in ("kept input", "failed"):
            reasons[(r["status"], r["flag"])] = reasons.get((r["status"], r["flag"]), 0) + 1
    reason_rows = [{"status": s, "reason": f, "frames": n} for (s, f), n in sorted(reasons.items())]
    tables = [
        _table(
            "sequences",
            group_rows(rows, ("capture", "seq", "hand")),
            [("capture", "capture", "int"), ("seq", "sequence", "text"), ("hand", "hand", "text"), *group_columns],
            "change",
            False,
        ),
        _table(
            "captures",
            group_rows(rows, ("capture",)),
            [("capture", "capture", "int"), *group_columns],
            "capture",
            False,
        ),
        _table(
            "cameras",
            camera_rows(rows),
            [
                ("capture", "capture", "int"),
                ("camera", "camera", "text"),
                ("frames", "frames", "int"),
                ("before", "error before", "num"),
                ("after", "error after", "num"),
                ("ratio", "after / capture's median camera", "num"),
                ("stands_out", f"stands out (>= {STANDOUT}x)", "text"),
            ],
            "ratio",
            True,
        ),
        _table(
            "reasons",
            reason_rows,
            [("status", "status", "text"), ("reason", "reason", "text"), ("frames", "frames", "int")],
            "frames",
            True,
        ),
        _table("frames", rows, frame_columns, "after", True),
    ]
    histograms = {
        "before": [r["before"] for r in rows if r["before"] is not None],
        "after": [r["after"] for r in rows if r["after"] is not None],
    }
    if truth:
        histograms.update(
            eps_before=[r["eps_v_before"] for r in rows if r.get("eps_v_before") is not None],
            eps_after=[r["eps_v_after"] for r in rows if r.get("eps_v_after") is not None],
        )
    data = {
        "tables": tables,
        "histograms": {k: [round(v, 3) for v in values] for k, values in histograms.items()},
        "pageRows": settings.page_rows,
    }

    config = run.config
    options = config.get("options", {})
    card = [
        ("input dataset", f"{config.get('data', '?')} (split {config.get('split', '?')})"),
        ("selection", json.dumps(config.get("selection", {}))),
        ("method and settings", json.dumps(options)),
        (
            "tasks",
            f"{len(statuses)}: {statuses.count('done')} done, {statuses.count('failed')} failed, "
            f"{statuses.count('pending')} not finished",
        ),
        (
            "frames",
            f"{len(rows)}: {frame_status.count('refined')} refined, {frame_status.count('kept input')} kept their "
            f"input, {frame_status.count('failed')} in failed tasks, {frame_status.count('not run yet')} not run yet",
        ),
        ("report written", _when(time.time())),
    ]
    invocations = "".join(
        f"<tr><td>{e(_when(i['started']))}</td><td>{e(_when(i['finished']))}</td><td><code>{e(i['command'] or '')}"
        f"</code></td><td>{e(i['commit'] or '')}</td><td>{e(', '.join(f'{k} {v}' for k, v in i['machine'].items()))}"
        "</td></tr>"
        for i in run.invocations
    )
    missing = "".join(f"<li>{e(m)}</li>" for m in run.missing)
    complete = not any(s == "pending" for s in statuses)
    status_line = (
        "The run is complete." if complete and not run.missing else "This report is partial or incomplete; see below."
    )

    def gallery(title: str, anchor: str, chosen: list[dict], rule: str) -> str:
        parts = [f'<section id="{anchor}"><h2>{e(title)}</h2><p>{e(rule)}</p>']
        for row in chosen:
            images = overlays.get((row["capture"], row["seq"], row["frame"], row["hand"]), [])
            truth_text = (
                f"; eps_v {row['eps_v_before']:.2f} &rarr; {row['eps_v_after']:.2f} mm" if "eps_v_after" in row else ""
            )
            parts.append(
                f'<div class="frame"><h3>{e(row["task"])} frame {row["frame"]} ({e(row["status"])}'
                f"{': ' + e(row['flag']) if row['flag'] else ''})</h3><p>error {row['before']:.2f} &rarr; "
                f"{row['after']:.2f}{truth_text}</p><div class='views'>"
            )
            for image in images:
                b, a = image["before"], image["after"]
                errors = f"{b:.2f} &rarr; {a:.2f}" if b is not None and a is not None else "no error recorded"
                parts.append(
                    f'<figure><a href="overlays/{image["index"]}_full.jpg"><img loading="lazy" class="overlay" '
                    f'src="overlays/{image["index"]}_thumb.jpg" alt="{e(image["camera"])}"></a>'
                    f"<figcaption>{e(image['camera'])}<br>{errors}</figcaption></figure>"
                )
            parts.append("</div></div>")
        if not chosen:
            parts.append("<p>No finished frame yet.</p>")
        return "".join(parts) + "</section>"

    appearance_html = ""
    if textures:
        cells = "".join(
            f'<figure><img loading="lazy" src="appearance/{t["index"]}_texture.png" alt="texture">'
            + (f'<img loading="lazy" src="appearance/{t["index"]}_mask.png" alt="seen texels">' if t["mask"] else "")
            + (f'<img loading="lazy" src="appearance/{t["index"]}_light.png" alt="light">' if t["light"] else "")
            + f"<figcaption>{e(t['task'])}</figcaption></figure>"
            for t in textures
        )
        appearance_html = (
            '<section id="appearance"><h2>Recovered texture and light (DMVR)</h2><p>Per task: the albedo '
            "texture (sRGB), the texels some camera saw in some frame (white; the others are filled from their "
            "neighbours on the surface), and the spherical-harmonics environment as a latitude-longitude image "
            f"(up at the top, scaled so that its brightest direction is white).</p><div class='views'>{cells}</div>"
            "</section>"
        )
    truth_note = (
        "<p>eps_v and eps_j are measured against the input's <code>ground_truth/</code>; that truth is a hand of the "
        "fitted model, so the best reachable error (the floor) is 0 mm.</p>"
        if truth
        else ""
    )
    return PAGE.format(
        title=e(f"handlib report: {run.out.name}"),
        out=e(str(run.out)),
        status=e(status_line),
        card="".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in card),
        invocations=invocations or "<tr><td colspan=5>not recorded</td></tr>",
        missing=f"<section id='missing'><h2>What is missing</h2><ul>{missing}</ul></section>" if missing else "",
        truth_note=truth_note,
        worst=gallery(
            f"The {len(worst)} worst frames",
            "worst",
            worst,
            "Highest backprojection error after refinement. Outlines: input annotation red, published annotation "
            "blue; under each view its own error before and after. Click a view for the full image.",
        ),
        best=gallery(
            f"The {len(best)} most improved frames",
            "best",
            best,
            "Largest drop of the backprojection error. Outlines as above.",
        ),
        appearance=appearance_html,
        standout=STANDOUT,
        plotly=get_plotlyjs(),
        data=_script_json(data),
    )


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval';
 style-src 'unsafe-inline'; img-src 'self' file: data: blob:; font-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
thead th {{ cursor: pointer; background: #f3f3f3; user-select: none; }}
.views {{ display: flex; flex-wrap: wrap; gap: 0.5em; }}
figure {{ margin: 0; text-align: center; font-size: 0.8em; }}
figure img {{ display: block; border: 1px solid #ccc; }}
.frame {{ margin: 1em 0; }} .frame h3 {{ margin: 0.2em 0; font-size: 1em; }} .frame p {{ margin: 0.2em 0; }}
.pager {{ font-size: 0.85em; }} .pager button {{ margin: 0 0.3em; }}
.legend span {{ padding: 0 0.4em; color: white; }}
nav a {{ margin-right: 1em; }}
</style></head><body>
<h1>{title}</h1>
<p>{out}</p><p><strong>{status}</strong></p>
<nav><a href="#run">Run</a><a href="#distributions">Distributions</a><a href="#sequences">Sequences</a>
<a href="#cameras">Cameras</a><a href="#kept">Kept and failed</a><a href="#frames">All frames</a>
<a href="#worst">Worst</a><a href="#best">Best</a></nav>
<p class="legend">Errors are backprojection errors (mean absolute difference, 0-255 levels, over the hand's pixels)
as the refinement measured them. Outlines: <span style="background:#e62828">input</span>
<span style="background:#286eff">published</span>.</p>
{missing}
<section id="run"><h2>Run</h2><table>{card}</table>
<h3>Invocations</h3><table><thead><tr><th>started</th><th>finished</th><th>command</th><th>software</th>
<th>machine</th></tr></thead><tbody>{invocations}</tbody></table></section>
<section id="distributions"><h2>Distributions</h2>{truth_note}<div id="plot-backprojection" class="plot"></div>
<div id="plot-eps" class="plot"></div></section>
<section id="sequences"><h2>Sequences</h2><p>Click a column to sort.</p><div id="table-sequences"></div>
<h3>Captures</h3><div id="table-captures"></div></section>
<section id="cameras"><h2>Cameras</h2><p>Per capture and camera, the mean error over the frames it saw; a camera
whose error after refinement is {standout} times its capture's median camera or more stands out (miscalibrated,
mis-exposed, or seeing the hand badly).</p><div id="table-cameras"></div></section>
<section id="kept"><h2>Frames kept at their input, and failed tasks</h2><p>Grouped by reason; click a reason to
list its frames below.</p><div id="table-reasons"></div></section>
<section id="frames"><h2>All frames</h2><p><input id="filter" type="search" placeholder="filter: text in any column">
</p><div id="table-frames"></div></section>
{worst}
{best}
{appearance}
<p id="ready" hidden></p>
<script>{plotly}</script>
<script id="report-data" type="application/json">{data}</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("report-data").textContent);
const views = {{}};
function cell(kind, value) {{
  const td = document.createElement("td");
  if (value === null || value === undefined) {{ td.textContent = ""; }}
  else if (kind === "num") {{ td.textContent = value.toFixed(2); td.className = "num"; }}
  else if (kind === "int") {{ td.textContent = String(value); td.className = "num"; }}
  else {{ td.textContent = String(value); }}
  return td;
}}
function makeTable(spec) {{
  const root = document.getElementById("table-" + spec.name);
  const keys = spec.columns.map(c => c.key);
  const n = spec.data[keys[0]].length;
  const state = {{sort: spec.sort, desc: spec.desc, page: 0, filter: "", order: null}};
  function compute() {{
    let index = [...Array(n).keys()];
    if (state.filter) {{
      const f = state.filter.toLowerCase();
      index = index.filter(i => keys.some(k => String(spec.data[k][i] ?? "").toLowerCase().includes(f)));
    }}
    const column = spec.data[state.sort], sign = state.desc ? -1 : 1;
    index.sort((a, b) => {{
      const x = column[a], y = column[b];
      if (x === y) return a - b;
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * sign;
    }});
    state.order = index;
  }}
  function draw() {{
    const rows = D.pageRows, total = state.order.length;
    const pages = Math.max(1, Math.ceil(total / rows));
    state.page = Math.min(state.page, pages - 1);
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    spec.columns.forEach(c => {{
      const th = document.createElement("th");
      th.textContent = c.label + (c.key === state.sort ? (state.desc ? " \\u25bc" : " \\u25b2") : "");
      th.onclick = () => {{
        state.desc = c.key === state.sort ? !state.desc : c.kind !== "text";
        state.sort = c.key; compute(); draw();
      }};
      head.appendChild(th);
    }});
    const body = table.createTBody();
    for (const i of state.order.slice(state.page * rows, (state.page + 1) * rows)) {{
      const tr = body.insertRow();
      spec.columns.forEach(c => {{
        const td = cell(c.kind, spec.data[c.key][i]);
        if (spec.name === "reasons" && c.key === "reason") {{
          td.style.cursor = "pointer"; td.title = "list these frames";
          td.onclick = () => {{ views.frames.setFilter(spec.data.reason[i]); location.hash = "#frames"; }};
        }}
        tr.appendChild(td);
      }});
    }}
    const pager = document.createElement("div");
    pager.className = "pager";
    const first = total ? state.page * rows + 1 : 0, last = Math.min(total, (state.page + 1) * rows);
    const label = document.createElement("span");
    label.textContent = `rows ${{first}}-${{last}} of ${{total}}` + (total < n ? ` (filtered from ${{n}})` : "");
    for (const [text, step] of [["previous", -1], ["next", 1]]) {{
      const button = document.createElement("button");
      button.textContent = text;
      button.disabled = state.page + step < 0 || state.page + step >= pages;
      button.onclick = () => {{ state.page += step; draw(); }};
      pager.appendChild(button);
    }}
    pager.insertBefore(label, pager.lastChild);
    root.replaceChildren(table, pager);
  }}
  compute(); draw();
  return {{setFilter(text) {{ state.filter = text; state.page = 0; compute(); draw();
    if (spec.name === "frames") document.getElementById("filter").value = text; }}}};
}}
for (const spec of D.tables) views[spec.name] = makeTable(spec);
document.getElementById("filter").addEventListener("input", ev => views.frames.setFilter(ev.target.value));
function histogram(id, pairs, title, axis) {{
  const traces = pairs.filter(p => (D.histograms[p[0]] || []).length).map(p => ({{
    type: "histogram", x: D.histograms[p[0]], name: p[1], opacity: 0.6,
    nbinsx: Math.max(8, Math.min(60, Math.round(2 * Math.sqrt(D.histograms[p[0]].length))))}}));
  if (!traces.length) return;
  Plotly.newPlot(id, traces, {{barmode: "overlay", title: {{text: title}}, xaxis: {{title: {{text: axis}}}},
    yaxis: {{title: {{text: "frames"}}}}, height: 340, margin: {{t: 50}}}}, {{responsive: true}});
}}
histogram("plot-backprojection", [["before", "before"], ["after", "after"]], "Backprojection error per frame",
  "error (0-255 levels)");
histogram("plot-eps", [["eps_before", "before"], ["eps_after", "after"]], "Vertex error against the ground truth",
  "eps_v (mm); floor 0 mm");
const ready = document.getElementById("ready");
ready.textContent = String(Math.round(performance.now()));
ready.dataset.done = "yes";
</script></body></html>
"""
