"""Run the experiment notebooks with papermill, then build the Jupyter Book.

    python -m handlib.experiments.book [--profile smoke|quick|paper] [--root .] [--no-build]

The registry is the repository's top-level ``_config.yml``: each experiment names
a source notebook (kept without outputs in ``notebooks/``) and the parameters each
profile gives it. Executed copies are written to ``book/`` and the book is built
with execution off, so every figure in it comes from this run. A failing notebook
stops the run with its error; the book is not built from half the experiments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Experiment:
    name: str
    notebook: Path  # relative to the repository root
    parameters: dict[str, dict] = field(default_factory=dict)  # profile -> parameters
    after: tuple[str, ...] = ()  # experiments whose results this one reads (their changes re-run it)


@dataclass(frozen=True)
class Registry:
    default_profile: str
    profiles: tuple[str, ...]
    experiments: tuple[Experiment, ...]


def load_registry(path: Path) -> Registry:
    """Parse the experiment registry (``_config.yml``); errors name the bad entry."""
    if not path.is_file():
        raise FileNotFoundError(f"Experiment registry {path} not found; it lists the notebooks to run.")
    raw = yaml.safe_load(path.read_text()) or {}
    profiles = tuple(raw.get("profiles", ()))
    default = raw.get("default_profile")
    if not profiles or default not in profiles:
        raise ValueError(f"{path}: needs 'profiles' and a 'default_profile' among them.")
    experiments = []
    for entry in raw.get("experiments", []):
        if not {"name", "notebook"} <= set(entry):
            raise ValueError(f"{path}: experiment entry {entry!r} needs 'name' and 'notebook'.")
        params = entry.get("parameters") or {}
        unknown = set(params) - set(profiles)
        if unknown:
            raise ValueError(
                f"{path}: experiment {entry['name']!r} has parameters for unknown profiles {sorted(unknown)}."
            )
        after = tuple(entry.get("after") or ())
        known = {e.name for e in experiments}
        if not set(after) <= known:
            raise ValueError(
                f"{path}: experiment {entry['name']!r} comes after {sorted(set(after) - known)}, "
                "which are not listed before it."
            )
        experiments.append(
            Experiment(entry["name"], Path(entry["notebook"]), {k: dict(v or {}) for k, v in params.items()}, after)
        )
    return Registry(default, profiles, tuple(experiments))


def code_digest() -> str:
    """sha256 over handlib's own files (code and assets): a change to the library re-runs everything."""
    package = Path(__file__).resolve().parents[1]  # the whole handlib package
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".npz", ".json"}:
            digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cache_key(experiment: Experiment, params: dict, root: Path, code: str, earlier: dict[str, str]) -> str:
    """Key of one run: the source notebook, its parameters, handlib's code, and the keys of the
    experiments it reads results from."""
    digest = hashlib.sha256((root / experiment.notebook).read_bytes())
    digest.update(json.dumps(params, sort_keys=True).encode())
    digest.update(code.encode())
    for name in experiment.after:
        digest.update(earlier[name].encode())
    return digest.hexdigest()


def machine_record() -> dict:
    """What a run ran on: handlib commit, Mitsuba variant, CPU and GPU models."""
    import platform

    import handlib

    def command(*args: str) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=20, cwd=ROOT).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = command("git", "rev-parse", "--short=12", "HEAD") or "unknown"
    # What a run itself writes (figures, result tables) does not count as a change to the code.
    if command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!figures", ":!results"):
        commit += " (with uncommitted changes)"
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").is_file()
        else platform.processor()
    )
    gpu = command("nvidia-smi", "--query-gpu=name", "--format=csv,noheader").replace("\n", ", ") or "none"
    return {
        "handlib": f"{handlib.__version__}, commit {commit}",
        "mitsuba_variant": handlib.VARIANT,
        "cpu": f"{cpu} ({os.cpu_count()} logical cores)",
        "gpu": gpu,
        "python": platform.python_version(),
    }


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def record_run(path: Path, record: dict) -> None:
    """Append the run record to an executed notebook, as metadata and as a last markdown cell, keep
    the parameters papermill injected off the page (the record lists them), and drop the state of
    interactive widgets: a widget needs a live kernel, and its state on a page would make the book
    load the widgets' JavaScript from a CDN (the book works offline; the explore page shows static
    figures instead)."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_VIEW, None)
    notebook.metadata["handlib_run"] = record
    rows = "\n".join(f"| {key.replace('_', ' ')} | {value} |" for key, value in record.items() if key != "key")
    notebook.cells.append(
        nbformat.v4.new_markdown_cell(f"```{{admonition}} Run record\n:class: note\n\n| | |\n|---|---|\n{rows}\n```")
    )
    nbformat.write(notebook, path)


#: The profile whose figures are committed in figures/ (README and the book's screenshots show them).
COMMITTED_PROFILE = "quick"


@contextmanager
def _environment(**values: str):
    """Environment variables set for the block (the notebook kernels papermill starts inherit them)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _check_profile(registry: Registry, profile: str) -> None:
    if profile not in registry.profiles:
        raise ValueError(f"Unknown profile {profile!r}; choose one of {', '.join(registry.profiles)}.")


def run_experiments(registry: Registry, profile: str, root: Path = ROOT, force: bool = False) -> list[Path]:
    """Execute every notebook into ``book/`` for ``profile``; return the executed paths.

    A notebook whose cache key (:func:`cache_key`) matches its last run is not run again,
    unless ``force``. A failing notebook raises papermill's error, which shows the cell.
    """
    _check_profile(registry, profile)
    code, machine = code_digest(), None
    cache = root / "book" / "_cache"
    cache.mkdir(parents=True, exist_ok=True)
    outputs, keys = [], {}
    for experiment in registry.experiments:
        source = root / experiment.notebook
        target = root / "book" / f"{experiment.name}.ipynb"
        params = {"profile": profile, **experiment.parameters.get(profile, {})}
        key = keys[experiment.name] = cache_key(experiment, params, root, code, keys)
        stamp = cache / f"{experiment.name}.json"
        if not force and target.is_file() and stamp.is_file() and json.loads(stamp.read_text()).get("key") == key:
            print(f"[{experiment.name}] unchanged since its last run ({profile}); not re-run", flush=True)
            outputs.append(target)
            continue
        stamp.unlink(missing_ok=True)
        machine = machine or machine_record()
        print(f"[{experiment.name}] running {experiment.notebook} ({profile})", flush=True)
        record = _execute(source, target, params, profile, root, machine, key)
        stamp.write_text(json.dumps(record, indent=1))
        print(f"[{experiment.name}] done in {record['wall_time']}", flush=True)
        outputs.append(target)
    return outputs


def _execute(
    source: Path, target: Path, params: dict, profile: str, root: Path, machine: dict, key: str | None = None
) -> dict:
    """Run the notebook ``source`` into ``target`` with ``params``, append its run record (with
    ``machine`` and the cache ``key``) and write that record beside the result tables (``results/<profile>/runs/``,
    named after ``target``); return it."""
    import papermill

    start = time.time()
    # Figures of the committed profile go to figures/, the others' to figures/<profile>/ (report.FIGURES).
    figures = "figures" if profile == COMMITTED_PROFILE else f"figures/{profile}"
    with _environment(HANDLIB_FIGURES=figures):
        papermill.execute_notebook(str(source), str(target), parameters=params, cwd=str(root), progress_bar=False)
    record = {
        "profile": profile,
        "parameters": json.dumps(params),
        **machine,
        "wall_time": f"{time.time() - start:.0f} s",
        "finished": time.strftime("%Y-%m-%d %H:%M %Z"),
        **({"key": key} if key else {}),
    }
    record_run(target, record)
    # Beside the result tables the notebook wrote: which code, machine and parameters made them.
    runs = root / "results" / profile / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"{target.stem}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def run_study(registry: Registry, name: str, profile: str, table: str, overrides: dict, root: Path = ROOT) -> Path:
    """Run the experiment ``name`` as a study beside the book: its notebook with ``overrides``
    replacing entries of the profile's scale and its rows saved as ``results/<profile>/<table>.csv``
    (the notebook's ``overrides`` and ``table_name`` parameters), with a run record
    ``results/<profile>/runs/<table>.json``. The executed notebook goes to ``book/_cache/studies/``
    (the book does not show it; the experiment's page reads the committed table)."""
    experiment = next((e for e in registry.experiments if e.name == name), None)
    if experiment is None:
        raise ValueError(
            f"Unknown experiment {name!r}; the registry has {', '.join(e.name for e in registry.experiments)}."
        )
    _check_profile(registry, profile)
    import papermill

    missing = {"overrides", "table_name"} - set(papermill.inspect_notebook(str(root / experiment.notebook)))
    if missing:  # it would write the book's own tables
        raise ValueError(f"{experiment.notebook} cannot run as a study: its parameters cell lacks {sorted(missing)}.")
    if not table.isidentifier() or table == name:
        raise ValueError(f"A study's table needs a name of its own (letters, digits, _), got {table!r}.")
    params = {"profile": profile, **experiment.parameters.get(profile, {}), "overrides": overrides, "table_name": table}
    target = root / "book" / "_cache" / "studies" / f"{table}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"[{table}] running {experiment.notebook} ({profile}, overrides {json.dumps(overrides)})", flush=True)
    record = _execute(root / experiment.notebook, target, params, profile, root, machine_record())
    print(f"[{table}] done in {record['wall_time']}: results/{profile}/{table}.csv", flush=True)
    return target


def bundle_plotly(root: Path = ROOT) -> Path:
    """Copy the installed plotly.js into ``book/_vendor`` (every page loads it: the book's
    figures stay interactive offline, with no CDN)."""
    from plotly.offline import get_plotlyjs

    target = root / "book" / "_vendor" / "plotly.min.js"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(get_plotlyjs(), encoding="utf-8")
    return target


#: MathJax 3 as published on npm; `make book` downloads it (checked against this digest).
MATHJAX_TARBALL = Path(".make") / "mathjax-3.2.2.tgz"
MATHJAX_SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
MATHJAX_PARTS = ("tex-chtml.js", "output/", "input/", "ui/", "a11y/", "adaptors/")


def bundle_mathjax(root: Path = ROOT) -> Path | None:
    """Unpack MathJax's browser build into ``book/_vendor/mathjax`` (the book's ``mathjax_path``),
    so equations render offline. Without the tarball (only `make book` fetches it) the book
    still builds; its equations then show as TeX source unless the reader is online."""
    import hashlib
    import tarfile

    target = root / "book" / "_vendor" / "mathjax"
    if (target / "tex-chtml.js").is_file():
        return target
    tarball = root / MATHJAX_TARBALL
    if not tarball.is_file():
        print(f"note: {MATHJAX_TARBALL} not found (`make book` downloads it); equations need MathJax online.")
        return None
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if digest != MATHJAX_SHA256:
        raise ValueError(f"{tarball} has sha256 {digest}, expected {MATHJAX_SHA256}; delete it and run `make book`.")
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            name = member.name.removeprefix("package/es5/")
            if member.isfile() and name != member.name and name.startswith(MATHJAX_PARTS):
                path = target / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(archive.extractfile(member).read())
    return target


def build_book(root: Path = ROOT) -> Path:
    """``jupyter-book build book/`` with Sphinx warnings as errors; the HTML folder."""
    bundle_plotly(root)
    bundle_mathjax(root)
    # The jupyter-book beside this interpreter (make runs .venv/bin/python without
    # activating the venv, so PATH may hold another, e.g. an online-only 2.x).
    beside = Path(sys.executable).with_name("jupyter-book")
    exe = str(beside) if beside.is_file() else shutil.which("jupyter-book")
    if exe is None:
        raise FileNotFoundError("jupyter-book is not installed; run `make book` or `pip install -e .[book]`.")
    subprocess.run([exe, "build", "book/", "-W", "--keep-going"], cwd=root, check=True)
    return root / "book" / "_build" / "html"


def update_readme(root: Path, profile: str) -> None:
    """Rewrite the README's results section from the result tables just written (so that it and
    ``results/<profile>/`` change together; ``tests/test_results.py`` checks they agree)."""
    from handlib.experiments.summary import replace_section, summary

    readme = root / "README.md"
    if not readme.is_file():
        return
    try:
        readme.write_text(replace_section(readme.read_text(), summary(profile, root / "results"), profile))
    except ValueError as err:  # a README without the section's markers: say so, change nothing
        print(f"README.md not updated: {err}", flush=True)
    else:
        print(f"README.md: results section rewritten from results/{profile}/", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=None, help="smoke, quick or paper (default: the registry's)")
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--no-build", action="store_true", help="run the notebooks only")
    parser.add_argument("--force", action="store_true", help="re-run notebooks even when unchanged")
    parser.add_argument("--study", metavar="EXPERIMENT", help="run one experiment as a study beside the book")
    parser.add_argument("--table", help="with --study: the name of the study's table")
    parser.add_argument("--overrides", default="{}", help="with --study: JSON, entries replacing the profile's scale")
    args = parser.parse_args(argv)
    registry = load_registry(args.root / "_config.yml")
    profile = args.profile or registry.default_profile
    if args.study:
        if not args.table:
            parser.error("--study needs --table (the study's own table name)")
        run_study(registry, args.study, profile, args.table, json.loads(args.overrides), args.root)
        return
    run_experiments(registry, profile, args.root, args.force)
    if profile == COMMITTED_PROFILE:
        update_readme(args.root, profile)
    if not args.no_build:
        print(f"Book built: {build_book(args.root) / 'index.html'}")


if __name__ == "__main__":
    main()
