"""What the experiment notebooks publish: tidy result tables and plotly figures.

Tables go to ``results/<profile>/<name>.csv`` (one row per measurement), so a figure can be
redrawn from them without re-running an experiment. Figures are plotly: :func:`show`
displays one interactively (in Jupyter, and in the book, whose pages load the plotly.js
bundled with the book rather than a CDN) and saves a PNG of it in ``figures/``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from handlib.experiments.verdict import Estimate, judge

RESULTS = Path("results")
#: Where figures go: ``figures/`` holds the committed quick-profile ones; the book runner points
#: ``HANDLIB_FIGURES`` at ``figures/<profile>/`` for the other profiles, so a smoke or paper run does
#: not overwrite them.
FIGURES = Path(os.environ.get("HANDLIB_FIGURES", "figures"))


def save_table(rows, name: str, profile: str, folder: Path = RESULTS) -> pd.DataFrame:
    """Write ``rows`` (records or a DataFrame) to ``folder/profile/name.csv``; the DataFrame."""
    table = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    path = Path(folder) / profile / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return table


def load_table(name: str, profile: str, folder: Path = RESULTS) -> pd.DataFrame | None:
    """The table ``name`` of ``profile``, or None when that experiment has not run."""
    path = Path(folder) / profile / f"{name}.csv"
    return pd.read_csv(path) if path.is_file() else None


@dataclass(frozen=True)
class Ranking:
    """An ablation's configurations ranked by mean error, each compared with the reference run
    by run: on the same video with the same seed (hence the same Monte Carlo samples to start).

    ``differences``: one row per (video, run), one column per other configuration k, k's error
    minus the reference's. ``gaps[k]``: their mean, positive where the reference is better;
    ``noise[k]``: the half-width of that mean's 95% confidence interval (infinite with a single
    pair), the margin a gap must clear to count; ``verdicts[k]``: the claims' rule
    (:mod:`handlib.experiments.verdict`) on "the reference is better than k". ``baseline``: the
    reference's own value in each pair, for gaps relative to it (:attr:`relative_estimates`)."""

    means: dict[str, float]
    reference: str
    differences: pd.DataFrame = field(compare=False)
    baseline: pd.Series = field(compare=False)

    @property
    def pairs(self) -> int:
        return len(self.differences)

    @property
    def gaps(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.differences.mean().items()}

    @property
    def estimates(self) -> dict[str, Estimate]:
        return {k: Estimate.of(self.differences[k]) for k in self.differences.columns}

    @property
    def relative_differences(self) -> pd.DataFrame:
        """:attr:`differences` as percentages of the reference's value in the same pair (how the
        paper reports its deterioration: +22.83% for neither feature)."""
        return 100 * self.differences.div(self.baseline, axis=0)

    @property
    def relative_estimates(self) -> dict[str, Estimate]:
        """The mean of :attr:`relative_differences` per configuration, with its interval."""
        return {k: Estimate.of(v) for k, v in self.relative_differences.items()}

    @property
    def noise(self) -> dict[str, float]:
        return {k: (e.high - e.low) / 2 for k, e in self.estimates.items()}

    @property
    def verdicts(self) -> dict[str, str]:
        return {k: judge(e, 1.0) for k, e in self.estimates.items()}

    @property
    def best(self) -> str:
        return min(self.means, key=self.means.get)

    @property
    def lead(self) -> float:
        """How far the reference is ahead of the best other configuration (negative: behind)."""
        return min(self.gaps.values())

    @property
    def verdict(self) -> str:
        """Whether the reference is the best: 'same conclusion' when it is better than every other
        configuration by the rule, 'different' when some configuration is better, else 'unsettled'."""
        found = set(self.verdicts.values())
        if "different" in found:
            return "different"
        return "same conclusion" if found == {"same conclusion"} else "unsettled"


def rank_configurations(
    table: pd.DataFrame,
    reference: str,
    value: str = "eps_v_after",
    configuration: str = "features",
    video: str = "case",
    run: str = "seed",
) -> Ranking:
    """Rank the configurations of a tidy ablation table (one row per run: ``configuration``,
    ``video``, ``run`` (the seed; optional when each configuration runs once per video) and
    ``value``) and pair each with the ``reference`` on the same video and run."""
    missing = {value, configuration, video} - set(table.columns)
    if missing:
        raise ValueError(f"The ablation table lacks the columns {sorted(missing)}.")
    table = table if run in table.columns else table.assign(**{run: 0})
    if table.duplicated([configuration, video, run]).any():
        raise ValueError(f"Two rows share a {configuration}, {video} and {run}; give repeated runs distinct {run}s.")
    wide = table.pivot(index=[video, run], columns=configuration, values=value)
    if reference not in wide.columns or wide.shape[1] < 2:
        raise ValueError(f"Need the reference {reference!r} and another configuration; got {list(wide.columns)}.")
    if wide.isna().any().any():
        raise ValueError(f"Every configuration needs a run for each ({video}, {run}) that the others have.")
    means = table.groupby(configuration, sort=False)[value].mean()
    return Ranking(
        {k: float(v) for k, v in means.items()},
        reference,
        wide.drop(columns=reference).sub(wide[reference], axis=0),
        wide[reference],
    )


def save_image(name: str, image, folder: Path = FIGURES) -> Path:
    """Write an RGB uint8 ``image`` as ``folder/name.png`` and display it."""
    import cv2
    from IPython.display import Image, display

    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    display(Image(filename=str(path)))
    return path


def show(figure, name: str | None = None, width: int = 900, height: int = 420, folder: Path = FIGURES) -> None:
    """Display a plotly ``figure`` and, when ``name`` is given, save it as ``folder/name.png``.

    The output carries plotly's own MIME type (JupyterLab draws it) and an HTML div that
    expects plotly.js on the page (the book provides it), so nothing is fetched online.
    """
    from IPython.display import display

    figure.update_layout(width=width, height=height, template="plotly_white")
    if name is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        try:
            figure.write_image(str(Path(folder) / f"{name}.png"), width=width, height=height, scale=2)
        except Exception as err:  # kaleido needs a Chromium; say how to get one
            raise RuntimeError(
                f"Saving {name}.png needs kaleido and Chromium (apt install chromium; `make book` installs both): {err}"
            ) from err
    figure.update_layout(width=None, autosize=True)
    html = figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        default_width="100%",
        default_height=f"{height}px",
        config={"displaylogo": False},
    )
    display({"application/vnd.plotly.v1+json": json.loads(figure.to_json()), "text/html": html}, raw=True)
