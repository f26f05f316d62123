"""The optimisation loop SMVR and DMVR share: staged Adam steps with a history, the best state
kept, and a stop when the energy diverges.

A method supplies what is its own: its optimisers (one per group of unknowns), the energy
(``evaluate``: compute it, backpropagate, return its history record with the value under ``"E"``),
and how to copy its state (``snapshot``). Both papers search from the dataset's estimate by a few
hundred small steps and return the best state seen, so a run that starts to diverge ends with
what it had before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import torch
from tqdm import tqdm

from handlib.methods.schedule import Stage, diverging, total_iterations


class LoopSettings(Protocol):
    """What the loop reads from a method's settings (:class:`~handlib.methods.smvr.SMVRSettings`,
    :class:`~handlib.methods.dmvr.DMVRSettings`)."""

    schedule: Sequence[Stage]
    divergence_factor: float  # stop when the energy exceeds this times the first one


@dataclass
class Outcome:
    """What a run of :func:`optimise` leaves: the per-iteration records, the best iteration and the
    state :func:`snapshot` gave there, and whether the energy diverged."""

    best_state: Any
    best_iteration: int
    diverged: bool
    history: list[dict] = field(repr=False)


def optimise(
    settings: LoopSettings,
    optimisers: Mapping[str, torch.optim.Optimizer],
    evaluate: Callable[[Stage], dict],
    snapshot: Callable[[], Any],
    before_step: Callable[[Stage], None] | None = None,
    after_stage: Callable[[Stage], None] | None = None,
    desc: str = "refine",
    progress: bool = False,
    watch: Callable[[dict], bool | None] | None = None,
) -> Outcome:
    """Run ``settings.schedule``: in each of a stage's iterations, zero every optimiser's gradients,
    ``evaluate(stage)`` (the energy's gradients accumulated, its record returned), append the
    record, stop if the energy diverged (not finite, or above ``settings.divergence_factor`` times
    the first one), keep ``snapshot()`` if it is the lowest so far, run ``before_step(stage)``, and step the
    optimisers of the stage's groups (``stage.optimise``; groups without an optimiser are skipped).
    ``after_stage(stage)`` runs after each stage. ``watch(record)`` sees each record as it is
    appended (before the step); when it returns True the run stops there, as if the schedule ended
    (an interactive stop). When no iteration finished (the first energy was
    already not finite) the state before the first step is returned, as iteration 0."""
    history: list[dict] = []
    best_value, best_iteration, best_state = math.inf, 0, snapshot()
    first, diverged, stopped, iteration = None, False, False, 0
    bar = tqdm(total=total_iterations(settings.schedule), desc=desc, unit="it", disable=not progress)
    for stage in settings.schedule:
        active = [optimisers[group] for group in stage.optimise if group in optimisers]
        for _ in range(stage.iterations):
            for optimiser in optimisers.values():
                optimiser.zero_grad()
            record = {"iteration": iteration, "stage": "+".join(stage.optimise), **evaluate(stage)}
            history.append(record)
            value = record["E"]
            first = value if first is None else first
            if diverging(value, first, settings.divergence_factor):
                diverged = True
                break
            if value < best_value:
                best_value, best_iteration, best_state = value, iteration, snapshot()
            if watch is not None and watch(record):
                stopped = True
                break
            if before_step is not None:
                before_step(stage)
            for optimiser in active:
                optimiser.step()
            iteration += 1
            bar.update()
        if diverged or stopped:
            break
        if after_stage is not None:
            after_stage(stage)
    bar.close()
    return Outcome(best_state, best_iteration, diverged, history)
