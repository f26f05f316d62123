"""How a claim of a paper is judged against our measurements: one rule, written once.

Every claim row holds the paper's number, ours, the statistic behind ours (a mean with its 95%
confidence interval over cases, seeds or paired runs) and a verdict computed by :func:`judge`:

- **same conclusion**: the interval lies on the paper's side of zero, and, for a claim about a
  magnitude, it reaches within a factor :data:`MAGNITUDE_FACTOR` of the paper's value;
- **different**: the interval lies on the other side of zero, or (magnitude claims) it lies
  wholly outside that factor of the paper's value (e.g. a gain too small to be the paper's);
- **unsettled**: the interval holds zero (the gap does not clear its noise), and, for a
  magnitude claim, does not rule the paper's value out.

A single measurement has no interval: it is unsettled whatever its sign, so a profile too small
to repeat a comparison cannot produce a verdict by accident.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

#: A magnitude counts as the paper's when within this factor of it (half to twice).
MAGNITUDE_FACTOR = 2.0
VERDICTS = ("same conclusion", "unsettled", "different")


@dataclass(frozen=True)
class Estimate:
    """A mean and its two-sided 95% confidence interval (Student's t over ``n`` values)."""

    mean: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Estimate":
        """The mean of ``values`` (NaNs dropped) with its t interval; an infinite one for n < 2."""
        array = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
        if len(array) == 0:
            raise ValueError("An estimate needs at least one finite value.")
        mean = float(array.mean())
        if len(array) < 2:
            return cls(mean, -math.inf, math.inf, 1)
        half = float(stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / math.sqrt(len(array)))
        return cls(mean, mean - half, mean + half, len(array))

    @classmethod
    def paired(cls, first: Sequence[float], second: Sequence[float]) -> "Estimate":
        """The mean of ``first[i] - second[i]`` (the same case measured two ways)."""
        if len(first) != len(second):
            raise ValueError(f"Paired values need equal counts, got {len(first)} and {len(second)}.")
        return cls.of([a - b for a, b in zip(first, second)])

    def text(self, unit: str = "", digits: int = 2) -> str:
        """E.g. '+0.04 mm (95% CI -0.27 .. +0.35, n = 6)'."""
        if self.n < 2:
            return f"{self.mean:+.{digits}f}{' ' + unit if unit else ''} (one value, no interval)"
        return (
            f"{self.mean:+.{digits}f}{' ' + unit if unit else ''} "
            f"(95% CI {self.low:+.{digits}f} .. {self.high:+.{digits}f}, n = {self.n})"
        )


def judge(estimate: Estimate, paper: float, magnitude: bool = False) -> str:
    """The verdict on a claim whose sign (and with ``magnitude``, size) is ``paper``, given our
    ``estimate`` of the same quantity (signed the same way: positive = the paper's direction when
    ``paper`` > 0)."""
    if paper == 0 or not math.isfinite(paper):
        raise ValueError(f"The paper's value must be finite and non-zero (it gives the claim's sign), got {paper}.")
    sign = 1.0 if paper > 0 else -1.0
    low, high = sorted((sign * estimate.low, sign * estimate.high))  # now the paper's direction is positive
    size = abs(paper)
    if high < 0:
        return "different"
    if magnitude and (high < size / MAGNITUDE_FACTOR or low > size * MAGNITUDE_FACTOR):
        return "different"
    if low > 0:
        return "same conclusion"
    return "unsettled"


def claim_row(
    claim: str,
    paper: float,
    paper_text: str,
    estimate: Estimate,
    unit: str = "",
    magnitude: bool = False,
    note: str = "",
) -> dict:
    """One row of a claims table: the claim, the paper's number, ours with its statistic, the verdict."""
    return {
        "claim": claim,
        "paper": paper_text,
        "ours": estimate.text(unit),
        "verdict": judge(estimate, paper, magnitude),
        "rule": "magnitude (within x2 of the paper's)" if magnitude else "sign (the interval clears zero)",
        "why it may differ": note,
    }


def resolvable_gap(spread: float, pairs: int) -> float:
    """The smallest mean gap a study of ``pairs`` paired runs can tell from zero: the half-width of
    the 95% interval when the paired differences spread with standard deviation ``spread``."""
    if pairs < 2:
        return math.inf
    return float(stats.t.ppf(0.975, pairs - 1) * spread / math.sqrt(pairs))


def pairs_needed(spread: float, gap: float, most: int = 100_000) -> int:
    """How many paired runs a study needs so that a true gap of ``gap`` clears its 95% interval
    (the interval's half-width below ``gap``), for paired differences of standard deviation
    ``spread``; ValueError beyond ``most``."""
    if gap <= 0 or spread < 0:
        raise ValueError(f"gap must be positive and spread non-negative, got {gap} and {spread}.")
    pairs = 2
    while resolvable_gap(spread, pairs) >= gap:
        pairs = pairs + 1 if pairs < 64 else int(pairs * 1.1)
        if pairs > most:
            raise ValueError(f"More than {most} pairs would be needed to resolve {gap} against a spread of {spread}.")
    return pairs
