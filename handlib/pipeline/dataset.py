"""Refine a whole dataset split on Dask, resumably, with nothing lost.

The work is cut into :class:`~handlib.pipeline.refine.Unit` tasks (DMVR: a sequence, or chunks of
``chunk`` frames; SMVR: a frame), per hand. Each task runs on a Dask worker, writes its
texture, environment and metrics atomically under ``OUT/refinement/`` and returns its
per-frame annotations to the client, which records them in a SQLite ledger
(``OUT/ledger.sqlite``). Started again with the same command, a run redoes only the tasks the
ledger does not hold as finished; at the end the split's ``MANO_NeuralAnnot`` JSON is merged
from the input and the ledger and written atomically, beside copies of the other annotation
files and a link to the input images, so ``OUT`` reads back as an InterHand2.6M-layout dataset.

Failures stay in their task: bad input (:class:`~handlib.pipeline.refine.InputError`) is recorded with
its reason at once; any other error is retried once by Dask, and a worker that dies takes its
task to another worker once (``distributed.scheduler.allowed-failures`` = 1): a task that fails
twice is recorded as failed and the run goes on. The client hands out no more tasks than the
workers have threads, submitting the next as one finishes, so no task waits on a worker and a
worker's death is blamed on the task it ran only (the scheduler's ``worker-saturation`` = 1.0
queues only large groups of tasks: a few would be sent to one worker at once and die with it).
With ``--scheduler`` the two scheduler settings are the scheduler's own: set them in its Dask config.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
import os
import shutil
import sqlite3
import subprocess
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from handlib.data import names
from handlib.data.interhand import ANNOTATION_KINDS, SIDES, InterHandReader, annotation_path
from handlib.pipeline.refine import Options, Unit, frame_numbers

LEDGER = "ledger.sqlite"


@dataclass(frozen=True)
class Selection:
    """Which part of the split to refine: captures (None: all), a sequence-name pattern
    (shell-style), hands ('right', 'left' or 'both'), frames (``refine --frames`` syntax, empty:
    all), and for DMVR at most ``chunk`` frames per task (0: whole sequences). With ``hand='both'``,
    ``joint`` refines the two hands together (SMVR: a frame; DMVR: a video) where both are annotated."""

    captures: tuple[int, ...] | None = None
    seq_pattern: str = "*"
    hand: str = "right"
    frames: str = ""
    chunk: int = 0
    joint: bool = True

    def __post_init__(self) -> None:
        if self.hand not in (*SIDES, "both"):
            raise ValueError(f"hand must be 'right', 'left' or 'both', got {self.hand!r}.")
        if self.chunk < 0:
            raise ValueError("chunk must be >= 0.")


def plan(reader: InterHandReader, selection: Selection, method: str) -> list[Unit]:
    """The tasks of a run, in a fixed order. A hand's tasks hold the frames where it is annotated
    (the others keep their input unchanged); a hand annotated in none of a sequence's frames gets
    one task over all of them, which fails with that reason. With ``hand='both'`` a sequence gets
    tasks for each hand annotated somewhere in it (the right hand when none is); with
    ``selection.joint``, the frames where both hands are annotated are tasks for both together
    (SMVR: one frame each; DMVR: videos of those frames), the others tasks of their hand."""
    sequences: dict[tuple[int, str], list[int]] = {}
    for capture, seq, frame in reader.keys():
        if (selection.captures is None or capture in selection.captures) and fnmatch.fnmatchcase(
            seq, selection.seq_pattern
        ):
            sequences.setdefault((capture, seq), []).append(frame)
    units = []
    for (capture, seq), available in sorted(sequences.items()):
        numbers = frame_numbers(selection.frames, available)
        if not numbers:
            continue
        annotations = reader.mano.get(str(capture))
        annotations = annotations if isinstance(annotations, dict) else {}
        annotated = {
            side: [
                f
                for f in numbers
                if isinstance(annotations.get(str(f)), dict) and annotations[str(f)].get(side) is not None
            ]
            for side in SIDES
        }
        if selection.hand == "both":
            hands = [side for side in SIDES if annotated[side]] or ["right"]
        else:
            hands = [selection.hand]
        together = set()
        if selection.hand == "both" and selection.joint:
            together = set(annotated["right"]) & set(annotated["left"])
            units += [Unit(capture, seq, "both", tuple(g)) for g in _groups(sorted(together), method, selection.chunk)]
        for hand in hands:
            frames = [f for f in annotated[hand] if f not in together] or ([] if together else numbers)
            units += [Unit(capture, seq, hand, tuple(g)) for g in _groups(frames, method, selection.chunk)]
    return units


def _groups(frames: list[int], method: str, chunk: int) -> list[list[int]]:
    """A sequence's frames as tasks: one frame each (SMVR), or videos of at most ``chunk`` frames
    (DMVR; 0: all of them)."""
    if method == "smvr":
        return [[f] for f in frames]
    size = chunk or max(len(frames), 1)
    return [frames[i : i + size] for i in range(0, len(frames), size)]


class Ledger:
    """The run's record on disk: one row per task (pending, done or failed) with its result or
    its reason, and the run's configuration, in SQLite. Each change is one committed transaction
    (adding a run's tasks too: all of them or none), synced to disk before it returns."""

    def __init__(self, path: str | Path, config: dict):
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA synchronous=FULL")
        with self.transaction():
            self.db.execute("CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS tasks (key TEXT PRIMARY KEY, position INTEGER, unit TEXT, "
                "status TEXT, reason TEXT, result TEXT, attempts INTEGER, updated REAL)"
            )
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS invocations (started REAL, finished REAL, command TEXT, "
                "commit_id TEXT, machine TEXT)"
            )
        stored = self.db.execute("SELECT value FROM run WHERE key = 'config'").fetchone()
        wanted = json.dumps(config, sort_keys=True)
        if stored is None:
            with self.transaction():
                self.db.execute("INSERT INTO run VALUES ('config', ?)", (wanted,))
        elif upgraded(stored[0]) != wanted:
            raise ValueError(
                f"{self.path.parent} holds a run with other settings ({stored[0]}); run the same "
                f"command to resume it, or give a new --out."
            )

    @contextmanager
    def transaction(self):
        """One explicit transaction: committed when the block ends, rolled back if it raises. (The
        connection is in autocommit mode, where ``with self.db`` would commit every statement on
        its own: one disk sync per row.)"""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def add(self, units: list[Unit]) -> None:
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO tasks VALUES (?, ?, ?, 'pending', '', '', 0, ?)",
                [(u.key, i, json.dumps(asdict(u)), time.time()) for i, u in enumerate(units)],
            )

    def start(self, command: str) -> int:
        """Record that ``command`` (re)started the run here and now, on this machine and commit; its row id."""
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO invocations VALUES (?, NULL, ?, ?, ?)",
                (time.time(), command, software_commit(), json.dumps(machine())),
            )
        return int(cursor.lastrowid)

    def finish(self, invocation: int) -> None:
        with self.transaction():
            self.db.execute("UPDATE invocations SET finished = ? WHERE rowid = ?", (time.time(), invocation))

    def todo(self, retry_failed: bool = False) -> list[Unit]:
        statuses = ("pending", "failed") if retry_failed else ("pending",)
        rows = self.db.execute(
            f"SELECT unit FROM tasks WHERE status IN ({','.join('?' * len(statuses))}) ORDER BY position", statuses
        )
        return [unit_from_json(row[0]) for row in rows]

    def record(self, key: str, status: str, result: dict | None = None, reason: str = "") -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE tasks SET status = ?, reason = ?, result = ?, attempts = attempts + 1, "
                "updated = ? WHERE key = ?",
                (status, reason, json.dumps(result) if result is not None else "", time.time(), key),
            )

    def rows(self) -> list[dict]:
        return read_tasks(self.db)

    def close(self) -> None:
        self.db.close()


def selection_config(selection: Selection) -> dict:
    """The selection as a run's ledger records it: ``joint`` only where it matters (``hand='both'``),
    so that a run of one hand from before joint refinement existed resumes unchanged."""
    fields = asdict(selection)
    if selection.hand != "both":
        del fields["joint"]
    return fields


def upgraded(stored: str) -> str:
    """A ledger's recorded configuration in today's terms: a ``hand='both'`` run from before joint
    refinement (no ``joint`` recorded) refined each hand apart (``--separate``)."""
    config = json.loads(stored)
    selection = config.get("selection") if isinstance(config, dict) else None
    if isinstance(selection, dict) and selection.get("hand") == "both" and "joint" not in selection:
        selection["joint"] = False
    return json.dumps(config, sort_keys=True)


def read_tasks(db: sqlite3.Connection) -> list[dict]:
    """The ledger's tasks in their order: key, unit, status, reason, result (parsed), attempts."""
    cursor = db.execute("SELECT key, unit, status, reason, result, attempts FROM tasks ORDER BY position")
    return [
        {
            "key": k,
            "unit": unit_from_json(u),
            "status": s,
            "reason": r,
            "result": json.loads(res) if res else None,
            "attempts": a,
        }
        for k, u, s, r, res, a in cursor
    ]


def software_commit() -> str:
    """handlib's version, and the git commit of its source when it runs from a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = f"handlib {version('handlib')}"
    except PackageNotFoundError:
        text = "handlib (not installed)"
    source = Path(__file__).resolve().parents[2]
    try:
        run = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if run.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            text += f", commit {run.stdout.strip()}{' (modified)' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    return text


def machine() -> dict:
    """Where a run ran: host, system, processor count, Python."""
    import platform

    return {
        "host": platform.node(),
        "system": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def unit_from_json(text: str) -> Unit:
    fields = json.loads(text)
    return Unit(fields["capture"], fields["seq"], fields["hand"], tuple(fields["frames"]))


def unit_folder(out: Path, unit: Unit) -> Path:
    """Where a task's files go: ``out/refinement/Capture<c>/<seq>/<hand>/<frames>``; a sequence name
    that is not a safe folder name raises :class:`~handlib.data.names.UnsafePath` (nothing outside ``out``)."""
    return names.join(
        Path(out) / "refinement",
        f"Capture{unit.capture}",
        unit.seq,
        unit.hand,
        unit.span,
        what=f"task {unit.key}: folder name",
    )


def refine_task(root: str, split: str, contents: dict, unit: Unit, options: Options, out: str, threads: int) -> dict:
    """What a worker runs: refine ``unit`` from the annotation subset ``contents``; write its files
    atomically; return per-frame entries and metrics. Bad input returns ``status='failed'`` with
    the reason (it would fail again); any other exception propagates so that Dask retries it."""
    import drjit as dr
    import torch

    from handlib.pipeline.refine import InputError, refine_unit, write_unit_files

    if threads > 0:
        dr.set_thread_count(threads)
        torch.set_num_threads(threads)
    try:
        folder = unit_folder(Path(out), unit)
        result = refine_unit(InterHandReader(root, split, contents), unit, options)
    except (InputError, names.UnsafePath) as err:
        return {"status": "failed", "reason": f"bad input: {err}"}
    write_unit_files(folder, result)
    summary = {k: v for k, v in result.summary.items() if k not in ("first", "best")}
    return {
        "status": "done",
        "entries": {str(f): e for f, e in result.entries.items()},
        "frames": result.frames,
        "summary": summary,
    }


@dataclass(frozen=True)
class Cluster:
    """Where tasks run: a scheduler address, or a LocalCluster of ``workers`` processes (default:
    one per ``gpus``, else one per core) using ``threads`` threads each (0: cores / workers).

    A local cluster listens on the loopback interface only, its dashboard too (``dashboard``:
    ``host:port``, port 0 picks a free one). A Dask scheduler runs whatever its clients send, so
    a remote one must use TLS with client certificates: give ``tls_ca_file``, ``tls_cert`` and
    ``tls_key`` (PEM files, as for ``dask scheduler --tls-ca-file ... --tls-cert ... --tls-key ...``)
    and a ``tls://`` address; the connection then requires encryption."""

    scheduler: str | None = None
    workers: int = 0
    gpus: int = 0
    threads: int = 0
    dashboard: str = "127.0.0.1:0"
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        tls = (self.tls_ca_file, self.tls_cert, self.tls_key)
        if any(tls) and not all(tls):
            raise ValueError("TLS needs all three files: --tls-ca-file, --tls-cert and --tls-key.")
        if all(tls) and not (self.scheduler or "").startswith("tls://"):
            raise ValueError(
                f"TLS files were given, so the scheduler address must start with tls://, got {self.scheduler!r}."
            )
        for path in filter(None, tls):
            if not Path(path).is_file():
                raise FileNotFoundError(f"TLS file {path} not found.")

    def local_workers(self) -> int:
        return self.workers or self.gpus or os.cpu_count() or 1

    def task_threads(self) -> int:
        if self.threads or self.scheduler:
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.local_workers())

    def security(self):
        """``distributed.Security`` for the client: TLS with this client's certificate, or None."""
        if not self.tls_ca_file:
            return None
        from distributed import Security

        return Security(
            tls_ca_file=self.tls_ca_file,
            tls_client_cert=self.tls_cert,
            tls_client_key=self.tls_key,
            require_encryption=True,
        )


@contextmanager
def connect(cluster: Cluster):
    """A Dask client on ``cluster``'s scheduler, or on a new local cluster (closed on exit), with
    refine-dataset's two scheduler settings (see the module's docstring)."""
    from dask import config as dask_config
    from distributed import Client, LocalCluster

    # A task may see one worker die under it and go to another; a second death fails it. Workers
    # get no more tasks than threads, so a dying worker takes no queued, innocent task with it.
    with dask_config.set({"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0}):
        if cluster.scheduler:
            with Client(cluster.scheduler, security=cluster.security()) as client:
                yield client
            return
        with (
            LocalCluster(
                n_workers=cluster.local_workers(),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=cluster.dashboard,
                resources={"GPU": 1} if cluster.gpus else None,
            ) as local,
            Client(local) as client,
        ):
            if cluster.gpus:
                client.register_plugin(_gpu_pinning(cluster.gpus))
            yield client


@dataclass
class Report:
    """What a run left: counts, the failures with reasons, where the dataset is."""

    out: Path
    done: int
    failed: list[tuple[str, str]]
    kept_input: int
    frames: int
    seconds: float = 0.0


def _gpu_pinning(gpus: int):
    from distributed import WorkerPlugin

    class PinGPU(WorkerPlugin):
        """Give each local worker its own GPU before it first touches CUDA."""

        name = "handlib-pin-gpu"

        def setup(self, worker):
            os.environ["CUDA_VISIBLE_DEVICES"] = str(int(worker.name) % gpus)

    return PinGPU()


def _remove_partial_files(out: Path) -> None:
    """Temporary files of writes a kill interrupted (complete files are only ever renamed in), and
    reports a kill left half-written (a report is written in a hidden folder, then renamed)."""
    for folder in (out / "refinement", out / "annotations"):
        if folder.is_dir():
            for path in folder.rglob(".*.tmp"):
                path.unlink(missing_ok=True)
    for path in out.glob(".report-*.tmp"):
        shutil.rmtree(path, ignore_errors=True)


def _progress_line(done: int, failed: int, total: int, started: float, finished_now: int) -> str:
    left = total - done - failed
    elapsed = time.perf_counter() - started
    rate = finished_now / elapsed * 60.0 if elapsed > 0 else 0.0
    eta = f"{left / rate:.1f} min" if rate > 0 else "unknown"
    return f"refine-dataset: {done}/{total} done, {failed} failed, {left} left | {rate:.2f} tasks/min | ETA {eta}"


def run_dataset(
    data: str | Path,
    split: str,
    out: str | Path,
    selection: Selection = Selection(),
    options: Options = Options(),
    cluster: Cluster = Cluster(),
    retry_failed: bool = False,
    log: Callable[[str], None] = print,
    task: Callable[..., dict] = refine_task,
    command: str = "",
) -> Report:
    """Refine the selected part of ``data``'s split into ``out`` (see the module's docstring).
    ``task`` is what workers run per unit, with :func:`refine_task`'s arguments and result;
    ``command`` is recorded in the ledger, for the run's report
    (:func:`handlib.pipeline.report.write_report`)."""
    from distributed import as_completed

    started = time.perf_counter()
    data, out = Path(data).resolve(), Path(out).resolve()
    if out == data or data in out.parents:
        raise ValueError(f"--out {out} must be outside the input dataset {data}.")
    reader = InterHandReader(data, split)
    units = plan(reader, selection, options.method)
    if not units:
        raise ValueError(f"nothing to refine: no sequence of {data} (split {split}) matches {selection}.")
    out.mkdir(parents=True, exist_ok=True)
    _remove_partial_files(out)
    ledger = Ledger(
        out / LEDGER,
        {"data": str(data), "split": split, "selection": selection_config(selection), "options": asdict(options)},
    )
    try:
        invocation = ledger.start(command or "run_dataset (Python)")
        ledger.add(units)
        todo = ledger.todo(retry_failed)
        statuses = [r["status"] for r in ledger.rows()]
        done, failed = statuses.count("done"), 0 if retry_failed else statuses.count("failed")
        log(
            f"refine-dataset: {len(units)} task(s) ({options.method}), {done} already done, {failed} failed before, "
            f"{len(todo)} to run"
        )
        if todo:
            with connect(cluster) as client:
                log(f"refine-dataset: Dask dashboard at {client.dashboard_link}")
                gpu = any(w.get("resources", {}).get("GPU") for w in client.scheduler_info()["workers"].values())
                ready = deque()
                for unit in todo:
                    try:  # a name that would leave OUT fails its task here, before any work
                        unit_folder(out, unit)
                    except names.UnsafePath as err:
                        ledger.record(unit.key, "failed", reason=f"bad input: {err}")
                        failed += 1
                        log(f"refine-dataset: {unit.key} failed: bad input: {err}")
                        continue
                    ready.append(unit)
                futures: dict = {}
                running = as_completed()

                def submit_while_free() -> None:
                    """Hand out tasks while a worker thread is free: one waiting on a worker
                    would die with it when another task kills that worker."""
                    free = max(sum(w["nthreads"] for w in client.scheduler_info()["workers"].values()), 1)
                    while ready and running.count() < free:
                        unit = ready.popleft()
                        future = client.submit(
                            task,
                            str(data),
                            split,
                            reader.subset([(unit.capture, unit.seq, f) for f in unit.frames]),
                            unit,
                            options,
                            str(out),
                            cluster.task_threads(),
                            key=f"refine-{unit.key}",
                            retries=1,
                            pure=False,
                            resources={"GPU": 1} if gpu else None,
                        )
                        futures[future] = unit
                        running.add(future)

                submit_while_free()
                for count, future in enumerate(running, 1):
                    unit = futures.pop(future)
                    submit_while_free()
                    try:
                        result = future.result()
                    except Exception as err:  # failed twice (error, or two workers lost): recorded, run goes on
                        result = {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
                    if result["status"] == "done":
                        ledger.record(unit.key, "done", result)
                        done += 1
                    else:
                        ledger.record(unit.key, "failed", reason=result["reason"])
                        failed += 1
                        log(f"refine-dataset: {unit.key} failed: {result['reason']}")
                    log(_progress_line(done, failed, len(units), started, count))
        summary = write_dataset(reader, ledger, out, log)
        ledger.finish(invocation)
    finally:
        ledger.close()
    return replace(summary, seconds=time.perf_counter() - started)


def write_dataset(reader: InterHandReader, ledger: Ledger, out: Path, log: Callable[[str], None] = print) -> Report:
    """The output dataset from the input and the ledger: merged MANO JSON (atomically), copies of
    the other annotation files, a link to the images, per-frame metrics and a summary table."""
    from handlib.pipeline.refine import atomic_write

    rows = ledger.rows()
    mano = json.loads(json.dumps(reader.mano))  # a deep copy: frames not refined keep their input
    frames_table, summary_table, failures, kept = [], [], [], 0
    for row in rows:
        unit, result = row["unit"], row["result"]
        if row["status"] == "done":
            frames = mano.setdefault(str(unit.capture), {})
            for frame, entry in result["entries"].items():
                hands = entry if unit.hand == "both" else {unit.hand: entry}  # both: {side: entry}
                frames[frame] = {**(frames.get(frame) or {side: None for side in SIDES}), **hands}
            for side, reason in result["summary"].get("refused", {}).items():
                failures.append((f"{row['key']} ({side} hand)", f"bad input: {reason}"))
            for metrics in result["frames"]:
                frames_table.append({"capture": unit.capture, "seq": unit.seq, "hand": unit.hand, **metrics})
                kept += bool(metrics["kept_input"])
        elif row["status"] == "failed":
            failures.append((row["key"], row["reason"]))
        before = [m["backprojection_before"] for m in result["frames"]] if result else []
        after = [m["backprojection_after"] for m in result["frames"]] if result else []
        summary_table.append(
            {
                "task": row["key"],
                "status": row["status"],
                "reason": row["reason"],
                "frames": len(unit.frames),
                "attempts": row["attempts"],
                "backprojection_before": sum(before) / len(before) if before else math.nan,
                "backprojection_after": sum(after) / len(after) if after else math.nan,
                "seconds": result["summary"]["seconds"] if result else math.nan,
            }
        )
    split = reader.split
    atomic_write(annotation_path(out, split, "MANO_NeuralAnnot"), json.dumps(mano))
    for kind in ANNOTATION_KINDS[:3]:
        source, target = annotation_path(reader.root, split, kind), annotation_path(out, split, kind)
        if not target.is_file() or target.stat().st_size != source.stat().st_size:
            temporary = target.with_name(f".{target.name}.copy.tmp")
            shutil.copyfile(source, temporary)
            os.replace(temporary, target)
    images = out / "images" / split
    if not images.exists():
        images.parent.mkdir(parents=True, exist_ok=True)
        link = images.with_name(f".{split}.link.tmp")
        link.unlink(missing_ok=True)
        link.symlink_to(reader.images_dir.resolve(), target_is_directory=True)
        os.replace(link, images)
    atomic_write(
        out / "refinement" / "frames.csv",
        _csv(
            frames_table,
            [
                "capture",
                "seq",
                "hand",
                "frame",
                "backprojection_before",
                "backprojection_after",
                "diverged",
                "kept_input",
                "flag",
            ],
        ),
    )
    camera_table = [
        {**{k: row[k] for k in ("capture", "seq", "hand", "frame")}, "camera": name, "before": b, "after": a}
        for row in frames_table
        for name, (b, a) in row.get("cameras", {}).items()  # ledgers of earlier versions have none
    ]
    atomic_write(
        out / "refinement" / "cameras.csv",
        _csv(camera_table, ["capture", "seq", "hand", "frame", "camera", "before", "after"]),
    )
    atomic_write(out / "refinement" / "summary.csv", _csv(summary_table, list(summary_table[0])))
    done = sum(r["status"] == "done" for r in rows)
    log(
        f"refine-dataset: {done} of {len(rows)} task(s) done, {len(failures)} failed, {kept} frame(s) kept their "
        f"input annotation; wrote {out}"
    )
    for key, reason in failures:
        log(f"  failed {key}: {reason}")
    return Report(out, done, failures, kept, len(frames_table))


def _csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
