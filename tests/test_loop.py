"""The optimisation loop both methods share: stages step only their groups, the best state is
kept, a diverging energy stops the run and the best state before it is returned."""

import math
from types import SimpleNamespace

import torch

from handlib.methods.loop import optimise
from handlib.methods.schedule import Stage


def loop_settings(*stages: Stage) -> SimpleNamespace:
    return SimpleNamespace(schedule=stages, divergence_factor=10.0)


def quadratic_problem(explode_at: int | None = None):
    a = torch.tensor([4.0], requires_grad=True)
    b = torch.tensor([-3.0], requires_grad=True)
    optimisers = {"a": torch.optim.SGD([a], lr=0.1), "b": torch.optim.SGD([b], lr=0.1)}
    calls = []

    def evaluate(stage):
        calls.append(stage.optimise)
        energy = a.square().sum() + b.square().sum()
        if explode_at is not None and len(calls) > explode_at:
            energy = energy * math.inf
        energy.backward()
        return {"E": float(energy.detach()), "a": float(a), "b": float(b)}

    def snapshot():
        return float(a), float(b)

    return a, b, optimisers, evaluate, snapshot


def test_stages_step_their_groups_and_the_best_state_is_returned():
    a, b, optimisers, evaluate, snapshot = quadratic_problem()
    stages = []
    outcome = optimise(
        loop_settings(Stage(("a",), 5), Stage(("b",), 5), Stage(("a", "b", "unknown"), 3)),
        optimisers,
        evaluate,
        snapshot,
        after_stage=lambda stage: stages.append(stage.optimise),
    )
    history = outcome.history
    assert len(history) == 13 and [r["iteration"] for r in history] == list(range(13))
    assert all(r["b"] == -3.0 for r in history[:6])  # b frozen in the first stage
    assert history[5]["a"] == history[9]["a"]  # a frozen in the second
    assert history[0]["stage"] == "a" and history[-1]["stage"] == "a+b+unknown"
    assert not outcome.diverged and stages == [("a",), ("b",), ("a", "b", "unknown")]
    energies = [r["E"] for r in history]
    assert outcome.best_iteration == energies.index(min(energies)) == 12
    assert outcome.best_state == (history[12]["a"], history[12]["b"])
    assert energies[-1] < 0.5 * energies[0]


def test_divergence_stops_the_run_and_keeps_the_best_state_before_it():
    a, b, optimisers, evaluate, snapshot = quadratic_problem(explode_at=4)
    stages = []
    outcome = optimise(
        loop_settings(Stage(("a", "b"), 10), Stage(("a",), 10)),
        optimisers,
        evaluate,
        snapshot,
        after_stage=lambda stage: stages.append(stage),
    )
    assert outcome.diverged and len(outcome.history) == 5 and stages == []  # stopped inside the first stage
    assert outcome.best_iteration == 3 and outcome.best_state == (outcome.history[3]["a"], outcome.history[3]["b"])


def test_a_first_energy_that_is_not_finite_returns_the_starting_state():
    a, b, optimisers, evaluate, snapshot = quadratic_problem(explode_at=0)
    outcome = optimise(loop_settings(Stage(("a",), 3)), optimisers, evaluate, snapshot)
    assert outcome.diverged and outcome.best_iteration == 0 and outcome.best_state == (4.0, -3.0)


def test_a_watcher_sees_every_record_and_can_stop_the_run():
    a, b, optimisers, evaluate, snapshot = quadratic_problem()
    seen = []

    def watch(record):
        seen.append(record["iteration"])
        return record["iteration"] == 6  # a user pressed stop during the second stage

    after = []
    outcome = optimise(
        loop_settings(Stage(("a",), 5), Stage(("b",), 5)),
        optimisers,
        evaluate,
        snapshot,
        after_stage=lambda stage: after.append(stage.optimise),
        watch=watch,
    )
    assert seen == list(range(7)) and len(outcome.history) == 7
    assert not outcome.diverged and after == [("a",)]  # the interrupted stage does not "finish"
    assert outcome.best_iteration == 6 and outcome.best_state == (outcome.history[6]["a"], outcome.history[6]["b"])
