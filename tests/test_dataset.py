"""refine-dataset: planning, the ledger, the guard, and runs on a LocalCluster of 2 processes,
including bad input, faults and SIGKILL of the client or of a worker part-way."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from handlib.data.interhand import InterHandReader, annotation_path
from handlib.data.synth import SynthSettings, synthesize
from handlib.methods.schedule import DMVR_SCHEDULE, SMVR_SCHEDULE, scaled
from handlib.pipeline.dataset import Cluster, Ledger, Selection, plan, refine_task, run_dataset
from handlib.pipeline.refine import Options, Unit, frame_numbers, guard
from handlib.pipeline.report import write_report

SMOKE = Options(method="smvr", schedule_scale=0.05, spp=2)
#: The variable groups that move a hand's geometry, per method.
GEOMETRY = {"smvr": {"geometry"}, "dmvr": {"shape", "pose", "articulation"}}
TWO_WORKERS = Cluster(workers=2, threads=1)  # one thread per task: results are bit-reproducible
COMMAND = [
    sys.executable,
    "-m",
    "handlib.cli",
    "refine-dataset",
    "--method",
    "smvr",
    "--schedule-scale",
    "0.05",
    "--spp",
    "2",
    "--workers",
    "2",
    "--threads",
    "1",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """3 sequences (captures) x 2 frames, 2 cameras of 41x64 (width x height)."""
    return synthesize(
        tmp_path_factory.mktemp("ds") / "data",
        SynthSettings(
            cameras=2, gestures=("open", "fist"), subjects=3, frames=2, shrink=8, spp=2, texture_size=32, seed=5
        ),
        progress=False,
    )


@pytest.fixture(scope="module")
def clean_run(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "out"
    run_dataset(dataset, "test", out, options=SMOKE, cluster=TWO_WORKERS, log=lambda line: None)
    return out


def outputs(out: Path) -> dict:
    """What must not depend on how a run went: the refined annotations and the per-frame metrics."""
    return {
        "mano": json.loads(annotation_path(out, "test", "MANO_NeuralAnnot").read_text()),
        "frames": (out / "refinement" / "frames.csv").read_text(),
    }


def ledger_rows(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "ledger.sqlite") as db:
        return db.execute("SELECT key, status, result FROM tasks ORDER BY position").fetchall()


def expected_changes(out: Path, options: Options) -> dict[tuple[int, int], bool]:
    """Per (capture, frame) of the tasks done: whether the published annotation must differ from
    the input: the guard kept nothing and the best state came after the first step that moves the
    geometry (both schedules open with stages that do not: their states carry the input's pose)."""
    schedule = scaled(SMVR_SCHEDULE if options.method == "smvr" else DMVR_SCHEDULE, options.schedule_scale)
    still = 0
    for stage in schedule:
        if GEOMETRY[options.method] & set(stage.optimise):
            break
        still += stage.iterations
    expected = {}
    for _, status, result in ledger_rows(out):
        if status == "done":
            result = json.loads(result)
            moved = result["summary"]["best_iteration"] > still
            for row in result["frames"]:
                expected[(result["summary"]["capture"], row["frame"])] = moved and not row["kept_input"]
    return expected


def test_frame_numbers_and_plan(dataset):
    assert frame_numbers("3,10:12", list(range(20))) == [3, 10, 11, 12]
    assert frame_numbers("", [5, 2]) == [2, 5] and frame_numbers("7", [1, 2]) == []
    with pytest.raises(ValueError, match="first:last"):
        frame_numbers("1:x", [1])
    reader = InterHandReader(dataset, "test")
    assert len(plan(reader, Selection(), "smvr")) == 6  # a task per frame
    assert [len(u.frames) for u in plan(reader, Selection(), "dmvr")] == [2, 2, 2]  # a task per sequence
    assert [len(u.frames) for u in plan(reader, Selection(chunk=1), "dmvr")] == [1] * 6
    assert {u.capture for u in plan(reader, Selection(captures=(1,)), "dmvr")} == {1}
    assert plan(reader, Selection(seq_pattern="other*"), "dmvr") == []
    # 'both': only the hands annotated somewhere in the sequence (the synthetic captures are right hands)
    assert {u.hand for u in plan(reader, Selection(hand="both"), "dmvr")} == {"right"}
    with pytest.raises(ValueError, match="hand"):
        Selection(hand="feet")
    # a frame without the hand is left out of its sequence's task (it keeps its input), not failed
    contents = reader.subset(reader.keys())
    first = min(f for c, _, f in reader.keys() if c == 0)
    contents["MANO_NeuralAnnot"]["0"][str(first)]["right"] = None
    partial = InterHandReader(dataset, "test", contents)
    assert [u.frames for u in plan(partial, Selection(captures=(0,)), "dmvr")] == [
        tuple(f for c, _, f in reader.keys() if c == 0 and f != first)
    ]
    seq = reader.keys()[0][1]
    assert (0, seq, first) in reader and (0, "nope", first) not in reader and first not in reader


def test_ledger_resumes_and_refuses_other_settings(tmp_path):
    units = [Unit(0, "s", "right", (1,)), Unit(0, "s", "right", (2,))]
    ledger = Ledger(tmp_path / "ledger.sqlite", {"a": 1})
    ledger.add(units)
    ledger.record(units[0].key, "done", {"x": 1})
    ledger.close()
    again = Ledger(tmp_path / "ledger.sqlite", {"a": 1})
    again.add(units)  # adding the same tasks again keeps their state
    assert again.todo() == [units[1]]
    again.record(units[1].key, "failed", reason="bad")
    assert again.todo() == [] and again.todo(retry_failed=True) == [units[1]]
    again.close()
    with pytest.raises(ValueError, match="other settings"):
        Ledger(tmp_path / "ledger.sqlite", {"a": 2})


def test_adding_a_runs_tasks_is_one_transaction(tmp_path):
    """Not one commit (and disk sync) per row: 3000 rows took 2.3 s that way, 0.03 s in one
    (benchmarks/ledger.py). A failure inside the transaction leaves none of its rows."""
    ledger = Ledger(tmp_path / "ledger.sqlite", {"a": 1})
    statements = []
    ledger.db.set_trace_callback(statements.append)
    ledger.add([Unit(0, "s", "right", (f,)) for f in range(50)])
    ledger.db.set_trace_callback(None)
    assert statements.count("BEGIN IMMEDIATE") == 1 and statements.count("COMMIT") == 1, statements[:5]
    assert len(ledger.todo()) == 50
    with pytest.raises(sqlite3.OperationalError):
        with ledger.transaction():
            ledger.db.execute("UPDATE tasks SET status = 'done'")
            ledger.db.execute("INSERT INTO no_such_table VALUES (1)")
    assert len(ledger.todo()) == 50  # rolled back
    ledger.close()


def test_guard_keeps_the_input_when_refinement_fails():
    assert guard(8.0, 6.0, diverged=False, finite=True) == ""
    assert guard(8.0, 6.0, diverged=True, finite=True) == "diverged"
    assert guard(8.0, float("nan"), diverged=False, finite=True) == "not finite"
    assert guard(8.0, 6.0, diverged=False, finite=False) == "not finite"
    assert guard(8.0, 9.0, diverged=False, finite=True) == "backprojection rose"


def test_a_diverged_refinement_publishes_the_input(dataset, monkeypatch):
    import torch

    import handlib.methods.smvr
    from handlib.pipeline.refine import refine_unit

    real = handlib.methods.smvr.refine_frame

    def diverging(*args, **kwargs):
        result = real(*args, **kwargs)
        nan_pose = torch.full_like(result.params.hand_pose, float("nan"))
        return dataclasses.replace(result, params=dataclasses.replace(result.params, hand_pose=nan_pose), diverged=True)

    monkeypatch.setattr(handlib.methods.smvr, "refine_frame", diverging)
    reader = InterHandReader(dataset, "test")
    key = reader.keys()[0]
    result = refine_unit(reader, Unit(key[0], key[1], "right", (key[2],)), SMOKE)
    assert result.entries[key[2]] == reader.frame(key).mano["right"]
    assert result.frames[0]["kept_input"] and result.frames[0]["flag"] == "diverged"


@pytest.mark.slow
def test_local_cluster_refines_a_dataset_that_reads_back(dataset, clean_run):
    reader = InterHandReader(clean_run, "test")
    source = InterHandReader(dataset, "test")
    assert reader.keys() == source.keys()
    frame = reader.frame(reader.keys()[0])
    assert frame.image(sorted(frame.image_paths)[0]).shape == (64, 41, 3)  # images reached through the link
    changed = [
        k
        for k in reader.keys()
        if reader.mano[str(k[0])][str(k[2])]["right"] != source.mano[str(k[0])][str(k[2])]["right"]
    ]
    rows = ledger_rows(clean_run)
    assert [status for _, status, _ in rows] == ["done"] * 6
    frames = (clean_run / "refinement" / "frames.csv").read_text().splitlines()
    assert len(frames) == 7 and all(",False," in line for line in frames[1:])  # none diverged
    # Each frame is published refined, or kept with the guard's reason (at 12 iterations of 41x64
    # images Monte Carlo noise can make a back-projection rise); a refined frame's annotation
    # differs from its input unless its best state came before the first geometry step.
    expected = expected_changes(clean_run, SMOKE)
    assert sorted(expected) == sorted((k[0], k[2]) for k in reader.keys())
    assert {(k[0], k[2]) for k in changed} == {key for key, moved in expected.items() if moved}
    assert changed
    assert len(list((clean_run / "refinement").rglob("colour_map.png"))) == 6
    seen = []  # each colour map's share of texels some camera saw (the hand covers about 40% of them)
    for colour_map in (clean_run / "refinement").rglob("colour_map.png"):
        mask = cv2.imread(str(colour_map.with_name("visibility.png")), cv2.IMREAD_GRAYSCALE)
        assert mask is not None and mask.shape == cv2.imread(str(colour_map)).shape[:2]
        assert np.isin(mask, [0, 255]).all()
        seen.append((mask == 255).mean())
    # hands 10-20 px wide: capture 2's refined outline holds almost no fully covered pixel
    assert sum(0.02 < s < 0.4 for s in seen) >= 4, seen


def spoil(data: Path) -> dict[int, str]:
    """One kind of bad input per capture (0-4); capture 5 stays good. The reason each must give."""
    reader = InterHandReader(data, "test")
    first = {c: min(f for cc, _, f in reader.keys() if cc == c) for c in range(6)}
    frame = {c: reader.frame((c, reader.keys()[0][1], first[c])) for c in range(6)}
    camera = sorted(frame[0].image_paths)[0]
    frame[0].image_paths[camera].unlink()  # missing image
    frame[1].image_paths[camera].write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")  # corrupt JPEG
    mano = json.loads(annotation_path(data, "test", "MANO_NeuralAnnot").read_text())
    mano["2"][str(first[2])]["right"]["pose"][5] = float("nan")  # NaN annotation
    for f in mano["4"]:  # no hand in any frame
        mano["4"][f]["right"] = None
    annotation_path(data, "test", "MANO_NeuralAnnot").write_text(json.dumps(mano))
    cameras = json.loads(annotation_path(data, "test", "camera").read_text())
    for table in cameras["3"].values():  # a camera without calibration
        del table[camera]
    annotation_path(data, "test", "camera").write_text(json.dumps(cameras))
    return {0: "image missing", 1: "Cannot decode image", 2: "NaN", 3: "camera skipped", 4: "no right hand"}


@pytest.mark.slow
def test_bad_input_fails_only_its_sequence(tmp_path):
    data = synthesize(
        tmp_path / "data",
        SynthSettings(cameras=2, gestures=("open",), subjects=6, frames=1, shrink=8, spp=2, texture_size=32, seed=6),
        progress=False,
    )
    reasons = spoil(data)
    lines = []
    options = Options(method="dmvr", schedule_scale=0.2, spp=2)
    report = run_dataset(
        data,
        "test",
        tmp_path / "out",
        options=options,
        cluster=TWO_WORKERS,
        log=lines.append,
    )
    failed = dict(report.failed)
    assert report.done == 1 and len(failed) == 5, failed
    for capture, reason in reasons.items():
        key = next(k for k in failed if k.startswith(f"{capture}/"))
        assert reason in failed[key], (capture, failed[key])
    summary = (tmp_path / "out" / "refinement" / "summary.csv").read_text()
    assert summary.count(",failed,") == 5 and summary.count(",done,") == 1
    assert any("failed 2/" in line and "NaN" in line for line in lines)  # the failures are listed with reasons
    merged = json.loads(annotation_path(tmp_path / "out", "test", "MANO_NeuralAnnot").read_text())
    source = json.loads(annotation_path(data, "test", "MANO_NeuralAnnot").read_text())
    assert all(merged[str(c)] == source[str(c)] for c in reasons)  # failed sequences keep their input
    # the good one is published refined (its pose moved if its best state came after the first
    # geometry step), or kept with the guard's reason: at this size any of these may happen
    rows = (tmp_path / "out" / "refinement" / "frames.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("5,")
    ((frame, moved),) = expected_changes(tmp_path / "out", options).items()
    assert (merged["5"] != source["5"]) == moved, (rows, frame)


def faulty_task(root, split, contents, unit, options, out, threads):
    """Capture 0: the worker dies every time; capture 1: an error every time; capture 2: the worker
    dies on the first attempt only (a marker file remembers it)."""
    if unit.capture == 0:
        os._exit(1)
    if unit.capture == 1:
        raise RuntimeError("injected failure")
    marker = Path(out) / f"died-once-{unit.key.replace('/', '_')}"
    if unit.capture == 2 and not marker.exists():
        marker.touch()
        os._exit(1)
    return refine_task(root, split, contents, unit, options, out, threads)


@pytest.mark.slow
def test_faults_are_retried_once_then_recorded(dataset, clean_run, tmp_path):
    report = run_dataset(
        dataset, "test", tmp_path / "out", options=SMOKE, cluster=TWO_WORKERS, log=lambda line: None, task=faulty_task
    )
    failed = dict(report.failed)
    assert sorted(k.split("/")[0] for k in failed) == ["0", "0", "1", "1"], failed
    assert all("KilledWorker" in r for k, r in failed.items() if k.startswith("0/"))
    assert all("injected failure" in r for k, r in failed.items() if k.startswith("1/"))
    assert report.done == 2  # capture 2's tasks succeeded on their second worker
    mano = outputs(tmp_path / "out")["mano"]
    assert mano["2"] == outputs(clean_run)["mano"]["2"]


def gpu_probe_task(root, split, contents, unit, options, out, threads):
    """The real task, reporting which GPU its worker was given."""
    result = refine_task(root, split, contents, unit, options, out, threads)
    result["summary"]["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    return result


@pytest.mark.slow
def test_gpu_workers_get_one_device_each_and_tasks_ask_for_one(dataset, clean_run, tmp_path):
    """The --gpus path on a CPU machine: workers declare a GPU resource (tasks that ask for one
    would wait forever otherwise) and each is pinned to its own device; Mitsuba still picks the
    CPU variant here, so the result equals the clean run's."""
    report = run_dataset(
        dataset,
        "test",
        tmp_path / "out",
        options=SMOKE,
        cluster=Cluster(gpus=2, threads=1),
        log=lambda line: None,
        task=gpu_probe_task,
    )
    assert report.done == 6 and not report.failed
    devices = {json.loads(result)["summary"]["cuda_visible_devices"] for _, _, result in ledger_rows(tmp_path / "out")}
    assert devices <= {"0", "1"} and devices, devices
    assert outputs(tmp_path / "out") == outputs(clean_run)


def visible_files_are_whole(out: Path) -> None:
    for path in out.rglob("*"):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix in (".json", ".csv"):
            text = path.read_text()
            if path.suffix == ".json":
                json.loads(text)
            else:
                assert text.endswith("\n")
        elif path.suffix == ".png":
            assert cv2.imread(str(path)) is not None, path


def wait_for_done(out: Path, process: subprocess.Popen, count: int, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        if (out / "ledger.sqlite").is_file():
            try:
                if sum(status == "done" for _, status, _ in ledger_rows(out)) >= count:
                    return
            except sqlite3.OperationalError:  # the tables are being created
                pass
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} tasks done after {timeout} s")


def command(dataset: Path, out: Path) -> list[str]:
    return COMMAND + ["--data", str(dataset), "--out", str(out)]


@contextlib.contextmanager
def running(dataset: Path, out: Path):
    """refine-dataset started in its own process group, which is killed whole on leaving."""
    process = subprocess.Popen(
        command(dataset, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


@pytest.mark.slow
def test_client_killed_part_way_resumes_to_the_clean_result(dataset, clean_run, tmp_path):
    out = tmp_path / "out"
    with running(dataset, out) as process:
        wait_for_done(out, process, 2)
        os.kill(process.pid, signal.SIGKILL)  # the client, and its scheduler with it; workers exit after it
        process.wait()
        visible_files_are_whole(out)
        statuses = [status for _, status, _ in ledger_rows(out)]
        assert 2 <= statuses.count("done") < 6 and set(statuses) <= {"done", "pending"}
        page = write_report(out).read_text(encoding="utf-8")  # the report of the killed run says what is missing
        assert f"{statuses.count('pending')} of 6 task(s) not finished" in page
    resumed = subprocess.run(command(dataset, out), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{statuses.count('done')} already done" in resumed.stdout
    assert resumed.stdout.count("tasks/min") == 6 - statuses.count("done")  # only unfinished tasks ran
    visible_files_are_whole(out)
    assert outputs(out) == outputs(clean_run)
    assert [row[:2] for row in ledger_rows(out)] == [row[:2] for row in ledger_rows(clean_run)]
    assert "The run is complete." in (out / "report" / "index.html").read_text(encoding="utf-8")  # replaced whole


@pytest.mark.slow
def test_worker_killed_part_way_loses_nothing(dataset, clean_run, tmp_path):
    import psutil

    out = tmp_path / "out"
    with running(dataset, out) as process:
        wait_for_done(out, process, 1)
        workers = [
            p for p in psutil.Process(process.pid).children(recursive=True) if "spawn_main" in " ".join(p.cmdline())
        ]
        assert len(workers) == 2, [p.cmdline() for p in workers]
        busy = max(workers, key=lambda p: p.cpu_percent(interval=0.5))
        busy.send_signal(signal.SIGKILL)
        output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert "Restarting worker" in output  # the nanny saw its worker die
    assert "6 of 6 task(s) done, 0 failed" in output
    visible_files_are_whole(out)
    assert outputs(out) == outputs(clean_run)
