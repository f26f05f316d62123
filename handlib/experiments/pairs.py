"""Joint against separate refinement of two interacting hands: synthetic frames by SMVR
(:func:`compare`) and synthetic videos by DMVR (:func:`compare_video`).

*Separate* is what ``--hand both`` did before handlib 0.3: each hand refined alone, the other hand
part of the photos' background. *Joint* refines both together
(:func:`handlib.methods.smvr.refine_hands`, :func:`handlib.methods.dmvr.refine_videos`): one
scene, mutual occlusion, the interpenetration term (and in DMVR one light). Both run the same
schedule with the same settings otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import time

from handlib.data.interacting import PairFrame, interaction_errors
from handlib.methods import metrics
from handlib.methods.dmvr import DMVRSettings, VideoHand, refine_sequence, refine_videos
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


def video_row(frames: list[PairFrame], method: str, params: list[list[HandParams]], seconds: float) -> dict:
    """One row of the video comparison: ``params[k][t]`` hand k in frame t. Per-hand eps_v / eps_j
    are means over the frames; penetration and intersection the worst frame's; contact kept the mean
    over the frames whose truth has contact."""
    rows = [outcome_row(frame, method, [hand[t] for hand in params], 0.0) for t, frame in enumerate(frames)]
    row = {"interaction": frames[0].interaction, "seed": frames[0].seed, "method": method, "frames": len(frames)}
    for key in ("eps_v_right", "eps_j_right", "eps_v_left", "eps_j_left", "eps_v"):
        row[key] = sum(r[key] for r in rows) / len(rows)
    row["penetration_mm"] = max(r["penetration_mm"] for r in rows)
    row["intersection_mm3"] = max(r["intersection_mm3"] for r in rows)
    kept = [r["contact_kept"] for r in rows if not math.isnan(r["contact_kept"])]
    row["contact_kept"] = sum(kept) / len(kept) if kept else float("nan")
    row["seconds"] = seconds
    return row


def compare_video(
    frames: list[PairFrame], settings: DMVRSettings, methods=("initial", "truth", "separate", "joint")
) -> tuple[list[dict], dict[str, list[list[HandParams]]]]:
    """Rows for ``methods`` on a video of interacting ``frames`` (one rig; DMVR), as :func:`compare`
    does for one frame; the parameters per method are (right, left) lists over the frames."""
    rows, fitted = [], {}
    hands = [VideoHand(frames[0].hands[k].model, [f.hands[k].initial for f in frames]) for k in range(2)]
    images = [f.images for f in frames]
    times = list(range(len(frames)))
    for method in methods:
        start = time.perf_counter()
        if method == "initial":
            params = [[f.hands[k].initial for f in frames] for k in range(2)]
        elif method == "truth":
            params = [[f.hands[k].truth_params for f in frames] for k in range(2)]
        elif method == "separate":
            params = [
                refine_sequence(h.model, frames[0].cameras, images, h.initial, times, settings).params for h in hands
            ]
        elif method == "joint":
            params = [r.params for r in refine_videos(hands, frames[0].cameras, images, times, settings)]
        else:
            raise ValueError(f"method must be initial, truth, separate or joint, got {method!r}.")
        rows.append(video_row(frames, method, params, time.perf_counter() - start))
        fitted[method] = params
    return rows, fitted
