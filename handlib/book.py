"""Run the experiment notebooks with papermill, then build the Jupyter Book.

    python -m handlib.book [--profile smoke|quick|paper] [--root .] [--no-build]

The registry is the repository's top-level ``_config.yml``: each experiment names
a source notebook (kept without outputs in ``notebooks/``) and the parameters each
profile gives it. Executed copies are written to ``book/`` and the book is built
with execution off, so every figure in it comes from this run. A failing notebook
stops the run with its error; the book is not built from half the experiments.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Experiment:
    name: str
    notebook: Path  # relative to the repository root
    parameters: dict[str, dict] = field(default_factory=dict)  # profile -> parameters


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
            raise ValueError(f"{path}: experiment {entry['name']!r} has parameters for unknown profiles {sorted(unknown)}.")
        experiments.append(Experiment(entry["name"], Path(entry["notebook"]), {k: dict(v or {}) for k, v in params.items()}))
    return Registry(default, profiles, tuple(experiments))


def run_experiments(registry: Registry, profile: str, root: Path = ROOT) -> list[Path]:
    """Execute every notebook into ``book/`` for ``profile``; return the executed paths."""
    import papermill

    if profile not in registry.profiles:
        raise ValueError(f"Unknown profile {profile!r}; choose one of {', '.join(registry.profiles)}.")
    outputs = []
    for experiment in registry.experiments:
        source = root / experiment.notebook
        target = root / "book" / f"{experiment.name}.ipynb"
        params = {"profile": profile, **experiment.parameters.get(profile, {})}
        start = time.time()
        print(f"[{experiment.name}] running {experiment.notebook} ({profile})", flush=True)
        papermill.execute_notebook(str(source), str(target), parameters=params, cwd=str(root), progress_bar=False)
        print(f"[{experiment.name}] done in {time.time() - start:.0f} s", flush=True)
        outputs.append(target)
    return outputs


def bundle_plotly(root: Path = ROOT) -> Path:
    """Copy the installed plotly.js into ``book/_static`` (every page loads it: the book's
    figures stay interactive offline, with no CDN)."""
    from plotly.offline import get_plotlyjs

    target = root / "book" / "_static" / "plotly.min.js"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(get_plotlyjs(), encoding="utf-8")
    return target


def build_book(root: Path = ROOT) -> Path:
    """``jupyter-book build book/`` with Sphinx warnings as errors; the HTML folder."""
    bundle_plotly(root)
    # The jupyter-book beside this interpreter (make runs .venv/bin/python without
    # activating the venv, so PATH may hold another, e.g. an online-only 2.x).
    beside = Path(sys.executable).with_name("jupyter-book")
    exe = str(beside) if beside.is_file() else shutil.which("jupyter-book")
    if exe is None:
        raise FileNotFoundError("jupyter-book is not installed; run `make book` or `pip install -e .[book]`.")
    subprocess.run([exe, "build", "book/", "-W", "--keep-going"], cwd=root, check=True)
    return root / "book" / "_build" / "html"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=None, help="smoke, quick or paper (default: the registry's)")
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--no-build", action="store_true", help="run the notebooks only")
    args = parser.parse_args(argv)
    registry = load_registry(args.root / "_config.yml")
    run_experiments(registry, args.profile or registry.default_profile, args.root)
    if not args.no_build:
        print(f"Book built: {build_book(args.root) / 'index.html'}")


if __name__ == "__main__":
    main()
