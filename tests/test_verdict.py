"""The claims' verdict rule: one case for each outcome, signs and magnitudes."""

from __future__ import annotations

import math

import pytest

from handlib.experiments.verdict import Estimate, claim_row, judge


def test_the_interval_is_students_t():
    estimate = Estimate.of([1.0, 2.0, 3.0, 4.0])
    # mean 2.5, sd 1.291, t(0.975, 3) = 3.182: half-width 2.054
    assert estimate.mean == 2.5 and estimate.n == 4
    assert estimate.low == pytest.approx(0.446, abs=1e-3) and estimate.high == pytest.approx(4.554, abs=1e-3)
    paired = Estimate.paired([3.0, 4.0, 5.0], [1.0, 2.0, 2.0])
    assert paired.mean == pytest.approx(7 / 3)
    with pytest.raises(ValueError):
        Estimate.paired([1.0], [1.0, 2.0])


def test_sign_claims():
    clear = Estimate.of([0.5, 0.6, 0.4, 0.55])
    noisy = Estimate.of([0.04, 0.5, -0.4, 0.1, -0.2, 0.3])  # "+0.04 +- 0.31 mm" is not a yes
    against = Estimate.of([-0.5, -0.6, -0.4])
    assert judge(clear, paper=1.0) == "same conclusion"
    assert judge(noisy, paper=1.0) == "unsettled"
    assert judge(against, paper=1.0) == "different"
    assert judge(against, paper=-2.0) == "same conclusion"  # the paper claims a decrease
    assert judge(Estimate.of([5.0]), paper=1.0) == "unsettled"  # one value: no interval, no verdict


def test_magnitude_claims():
    paper = 3.84  # DMVR's texture gain over SMVR, percent
    assert judge(Estimate.of([3.0, 4.5, 3.9, 4.2]), paper, magnitude=True) == "same conclusion"
    tiny = Estimate.of([0.3, 0.5, 0.4, 0.45])  # clearly positive but a tenth of the paper's
    assert judge(tiny, paper) == "same conclusion"
    assert judge(tiny, paper, magnitude=True) == "different"
    huge = Estimate.of([20.0, 22.0, 21.0])
    assert judge(huge, paper, magnitude=True) == "different"
    wide = Estimate.of([-1.0, 6.0, 2.0, 4.0])  # holds zero and the paper's value
    assert judge(wide, paper, magnitude=True) == "unsettled"
    with pytest.raises(ValueError):
        judge(wide, 0.0)
    with pytest.raises(ValueError):
        judge(wide, math.nan)


def test_a_claim_row_says_how_it_was_judged():
    row = claim_row("DMVR's texture beats SMVR's", 3.84, "r = 3.84%", Estimate.of([0.1, 0.2, 0.15]), "%", True)
    assert row["verdict"] == "different" and "x2" in row["rule"] and "n = 3" in row["ours"]


def test_the_power_of_a_paired_study():
    from handlib.experiments.verdict import pairs_needed, resolvable_gap

    # Two pairs: t(0.975, 1) = 12.71; a larger study narrows the interval like t / sqrt(n).
    assert resolvable_gap(1.0, 2) == pytest.approx(12.706 / math.sqrt(2), rel=1e-3)
    assert resolvable_gap(1.0, 1) == math.inf
    n = pairs_needed(0.53, 0.46)
    assert resolvable_gap(0.53, n) < 0.46 <= resolvable_gap(0.53, n - 1)
    assert pairs_needed(0.53, 0.05) > 100 * n / 10  # a ten times smaller gap needs ~100x the pairs
    with pytest.raises(ValueError):
        pairs_needed(1.0, 0.0)
