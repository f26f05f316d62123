"""Joint against separate refinement of two interacting hands, one synthetic frame at a time.

*Separate* is what ``--hand both`` did before handlib 0.3: each hand refined alone by SMVR, the
other hand part of the photos' background. *Joint* refines both together
(:func:`handlib.methods.smvr.refine_hands`): one scene, mutual occlusion, the interpenetration term.
Both run the same schedule with the same settings otherwise.
"""

from __future__ import annotations

import dataclasses
import time

from handlib.data.interacting import PairFrame, interaction_errors
from handlib.methods import metrics
from handlib.methods.smvr import HandInput, SMVRResult, SMVRSettings, refine_frame, refine_hands
from handlib.model.hand import HandParams

SIDES = ("right", "left")


def outcome_row(frame: PairFrame, method: str, params: list, seconds: float) -> dict:
    """One row of the comparison: per-hand eps_v / eps_j (mm), their mean, how the hands sit
    against each other (:func:`~handlib.data.interacting.interaction_errors`) and the seconds."""
    row = {"interaction": frame.interaction, "seed": frame.seed, "method": method}
    vertices = []
    for side, hand, p in zip(SIDES, frame.hands, params):
        output = hand.model(p)
        row[f"eps_v_{side}"], row[f"eps_j_{side}"] = metrics.errors_against(output, hand.truth)
        vertices.append(output.vertices[0].detach())
    row["eps_v"] = (row["eps_v_right"] + row["eps_v_left"]) / 2
    row.update(interaction_errors(frame.surfaces, vertices, frame.contact))
    row["seconds"] = seconds
    return row


def compare(
    frame: PairFrame, settings: SMVRSettings, methods=("initial", "truth", "separate", "joint")
) -> tuple[list[dict], dict[str, list[HandParams]]]:
    """Rows for ``methods`` on ``frame``: the initial estimate, the truth (its penetration, contact),
    separate and joint refinement; and each method's (right, left) parameters."""
    rows, fitted = [], {}
    for method in methods:
        start = time.perf_counter()
        if method == "initial":
            params = [hand.initial for hand in frame.hands]
        elif method == "truth":
            params = [hand.truth_params for hand in frame.hands]
        elif method == "separate":
            params = [result.params for result in separately(frame, settings)]
        elif method == "joint":
            params = [result.params for result in jointly(frame, settings)]
        else:
            raise ValueError(f"method must be initial, truth, separate or joint, got {method!r}.")
        rows.append(outcome_row(frame, method, params, time.perf_counter() - start))
        fitted[method] = params
    return rows, fitted


def inputs(frame: PairFrame) -> list[HandInput]:
    return [HandInput(hand.model, hand.initial, hand.joints, None, hand.truth) for hand in frame.hands]


def jointly(frame: PairFrame, settings: SMVRSettings) -> list[SMVRResult]:
    return refine_hands(inputs(frame), frame.cameras, frame.images, settings)


def separately(frame: PairFrame, settings: SMVRSettings) -> list[SMVRResult]:
    alone = dataclasses.replace(settings, penetration_weight=0.0)
    return [
        refine_frame(h.model, frame.cameras, frame.images, h.initial, h.joints, None, alone, h.truth)
        for h in frame.hands
    ]
