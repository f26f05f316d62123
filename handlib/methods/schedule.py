"""Optimisation schedules as data: stages that say what is optimised, for how long."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """``iterations`` Adam steps on the variable groups in ``optimise`` (others frozen).
    ``levels``: how many of the texture's levels of detail, coarsest first, are optimised
    (None: all); the others keep their values and still add to the texture."""

    optimise: tuple[str, ...]
    iterations: int
    levels: int | None = None


def total_iterations(stages: tuple[Stage, ...]) -> int:
    return sum(stage.iterations for stage in stages)


#: SMVR section 3.3: warm-up on the colour map, then blocks of 20 iterations on the colour map
#: and 80 on the geometry, the last 30 split 20 / 10; 230 in all.
SMVR_SCHEDULE = (
    Stage(("colour",), 20),
    Stage(("geometry",), 80),
    Stage(("colour",), 20),
    Stage(("geometry",), 80),
    Stage(("colour",), 20),
    Stage(("geometry",), 10),
)


def diverging(value: float, first: float, factor: float) -> bool:
    """Whether a loss ``value`` means the run diverged: not finite, or over ``factor`` times the first."""
    return not math.isfinite(value) or value > factor * first


def best_entry(history: list[dict], best_iteration: int) -> dict:
    """The history record of the state a refinement returned (the best one seen)."""
    return history[min(best_iteration, len(history) - 1)]


def scaled(stages: tuple[Stage, ...], factor: float) -> tuple[Stage, ...]:
    """The same schedule with every stage's length scaled (at least 1 iteration each)."""
    return tuple(Stage(stage.optimise, max(1, round(stage.iterations * factor)), stage.levels) for stage in stages)


#: DMVR section 3.6: the environment map alone (10), the texture's 2 coarsest of 8 levels (10),
#: then everything with all levels (80); the colour transforms are optimised throughout.
DMVR_GROUPS = ("environment", "texture", "shape", "pose", "articulation", "colour")
DMVR_SCHEDULE = (
    Stage(("environment", "colour"), 10),
    Stage(("texture", "colour"), 10, levels=2),
    Stage(DMVR_GROUPS, 80),
)
