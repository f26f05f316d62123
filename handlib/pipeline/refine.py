"""One unit of refinement: some frames of one sequence, one hand, one method.

What ``handlib refine`` runs once and ``handlib refine-dataset`` runs per task: check the
input (:class:`InputError` says what is wrong with it), refine with SMVR (one frame) or DMVR
(the frames as a video), and guard the result: a frame whose refinement diverged, is not
finite or ends with a higher backprojection error than it started keeps its input annotation
and is flagged, so refining never makes a dataset worse through a numerical failure.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from handlib.data.interhand import SIDES, Frame, InterHandReader, mano_entry
from handlib.methods.schedule import DMVR_SCHEDULE, SMVR_SCHEDULE, best_entry, scaled

METHODS = ("smvr", "dmvr")


class InputError(ValueError):
    """The unit's input cannot be refined (missing or corrupt image, NaN annotation, uncalibrated
    camera, no hand); the message says which file or frame."""


@dataclass(frozen=True)
class Unit:
    """Frames of one sequence to refine together (DMVR) or one frame (SMVR), for one hand."""

    capture: int
    seq: str
    hand: str
    frames: tuple[int, ...]

    @property
    def span(self) -> str:
        """``first-last`` frame numbers, or the one frame's."""
        return str(self.frames[0]) if len(self.frames) == 1 else f"{self.frames[0]}-{self.frames[-1]}"

    @property
    def key(self) -> str:
        return f"{self.capture}/{self.seq}/{self.hand}/{self.span}"


@dataclass(frozen=True)
class Options:
    """How to refine: method, schedule length, samples per pixel, cameras (None: every camera
    with an image in all the unit's frames), a licensed MANO model (None: the open hand)."""

    method: str = "smvr"  # the CLI's default too
    loss: str = "occlusion_aware"
    schedule_scale: float = 1.0
    spp: int = 4
    cameras: tuple[str, ...] | None = None
    mano: str | None = None

    @property
    def schedule(self) -> tuple:
        """The method's schedule (the paper's), its stages' iterations scaled by ``schedule_scale``."""
        return scaled(SMVR_SCHEDULE if self.method == "smvr" else DMVR_SCHEDULE, self.schedule_scale)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}.")
        if not self.schedule_scale > 0 or self.spp < 1:
            raise ValueError("schedule_scale must be > 0 and spp >= 1.")


@dataclass
class UnitResult:
    """Per frame: the annotation to publish (refined, or the input where ``flag`` says why not)
    and the backprojection error (0-255 levels) before and after, overall and per camera
    (``cameras``: name -> [before, after]); per unit: texture, lighting."""

    unit: Unit
    entries: dict[int, dict]  # frame -> MANO_NeuralAnnot entry of the hand
    frames: list[dict]  # per frame: frame, backprojection_before/after, diverged, flag, cameras
    texture: np.ndarray  # uint8 (S, S, 3), sRGB
    texture_name: str
    environment: list | None  # SH coefficients (DMVR)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list, repr=False)
    seen: np.ndarray | None = field(default=None, repr=False)  # (S, S) texels some camera saw


def frame_numbers(spec: str, available: list[int]) -> list[int]:
    """Numbers and ``first:last`` ranges (inclusive), comma-separated, among ``available``."""
    if not spec:
        return sorted(available)
    chosen = set()
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        try:
            if ":" in part:
                low, high = (int(v) if v else None for v in part.split(":", 1))
                chosen |= {f for f in available if (low is None or f >= low) and (high is None or f <= high)}
            else:
                chosen.add(int(part))
        except ValueError:
            raise ValueError(f"frames {spec!r}: use numbers and first:last ranges, e.g. 10,12,20:40.") from None
    return sorted(chosen & set(available))


def load_frames(
    reader: InterHandReader, unit: Unit, cameras: tuple[str, ...] | None = None
) -> tuple[list[Frame], list[str]]:
    """The unit's frames and the cameras to use; :class:`InputError` for anything unusable."""
    frames = []
    for number in unit.frames:
        key = (unit.capture, unit.seq, number)
        if key not in reader:
            raise InputError(f"no frame {key} in {reader.root} (split {reader.split}).")
        seen = len(reader.skipped)
        frame = reader.frame(key)
        problems = [reason for _, reason in reader.skipped[seen:]]
        if frame is None or problems:
            raise InputError(f"frame {number}: {'; '.join(problems) or 'unreadable'}")
        frames.append(frame)
    refused = [f"frame {f.frame}: {f.invalid[unit.hand]}" for f in frames if unit.hand in f.invalid]
    if refused:
        raise InputError("; ".join(refused))
    if unit.hand == "both":
        present = [f for f in frames if any(f.mano.get(side) is not None for side in SIDES)]
    else:
        present = [f for f in frames if f.mano.get(unit.hand) is not None]
    if not present:
        which = "hand" if unit.hand == "both" else f"{unit.hand} hand"
        raise InputError(f"no {which} annotated in any of frames {list(unit.frames)}.")
    if len(present) < len(frames) and unit.hand != "both":
        absent = [f.frame for f in frames if f.mano.get(unit.hand) is None]
        raise InputError(f"the {unit.hand} hand is not annotated in frame(s) {absent}; refine the others apart.")
    common = sorted(set.intersection(*(set(f.image_paths) for f in frames)))
    names = list(cameras) if cameras else common
    missing = [c for c in names if c not in common]
    if missing or not names:
        raise InputError(f"no image for camera(s) {missing or 'any'} in every frame of {list(unit.frames)}.")
    return frames, names


def read_images(frames: list[Frame], names: list[str]) -> list[list[np.ndarray]]:
    """``images[t][c]``, every file decoded now (a corrupt JPEG is an :class:`InputError`)."""
    try:
        return [[frame.image(c) for c in names] for frame in frames]
    except ValueError as err:
        raise InputError(str(err)) from None


def _finite(params) -> bool:
    return all(torch.isfinite(t).all() for t in (params.global_orient, params.hand_pose, params.betas, params.transl))


def guard(before: float, after: float, diverged: bool, finite: bool) -> str:
    """Why a frame keeps its input annotation ('' when the refinement is kept)."""
    if diverged:
        return "diverged"
    if not finite or not math.isfinite(after):
        return "not finite"
    if after > before:
        return "backprojection rose"
    return ""


def refine_unit(
    reader: InterHandReader,
    unit: Unit,
    options: Options = Options(),
    progress: bool = False,
    truth: list | None = None,
    watch: Callable[[dict, list], bool | None] | None = None,
) -> UnitResult:
    """Refine ``unit`` read through ``reader``; bad input raises :class:`InputError`. ``truth`` (a
    Truth or HandParams per frame) adds eps_v / eps_j to the history; ``watch(record, params)`` sees every
    iteration's record and HandParams per frame, and stops the run by returning True."""
    from handlib.model.hand import HandModel
    from handlib.rendering.colour import to_srgb8

    if options.method == "smvr" and len(unit.frames) != 1:
        raise ValueError("SMVR refines one frame per unit.")
    if unit.hand == "both":
        return refine_both(reader, unit, options, progress, truth)
    frames, names = load_frames(reader, unit, options.cameras)
    images = read_images(frames, names)
    model = HandModel(unit.hand, model_path=options.mano)
    cameras = [frames[0].cameras[c] for c in names]
    initial = [f.hand_params(unit.hand) for f in frames]
    environment = seen = None
    if options.method == "smvr":
        from handlib.methods.smvr import SMVRSettings, refine_frame

        joints, valid = annotated_joints(frames[0], unit.hand)
        settings = SMVRSettings(loss=options.loss, schedule=options.schedule, spp=options.spp)
        result = refine_frame(
            model,
            cameras,
            images[0],
            initial[0],
            joints,
            valid,
            settings,
            truth=truth[0] if truth else None,
            progress=progress,
            watch=(lambda record, params: watch(record, [params])) if watch else None,
        )
        refined = [result.params]
        # The colour map holds intensities as the images store them (sRGB-encoded): no conversion.
        texture, texture_name = (result.texture.numpy() * 255.0 + 0.5).astype(np.uint8), "colour_map.png"
        seen = result.seen
    else:
        from handlib.methods.dmvr import DMVRSettings, refine_sequence

        settings = DMVRSettings(schedule=options.schedule, spp=options.spp)
        result = refine_sequence(
            model,
            cameras,
            images,
            initial,
            [f.frame for f in frames],
            settings,
            truth=truth,
            progress=progress,
            watch=watch,
        )
        refined = result.params
        texture, texture_name = to_srgb8(result.texture.numpy()), "texture.png"
        environment = result.light.tolist()
        seen = result.seen
    first, best = result.history[0], best_entry(result.history, result.best_iteration)
    entries, per_frame = guarded(frames, initial, refined, first, best, result.diverged, names)
    summary = {
        "capture": unit.capture,
        "seq": unit.seq,
        "hand": unit.hand,
        "frames": list(unit.frames),
        "cameras": names,
        "method": options.method,
        "diverged": result.diverged,
        "best_iteration": result.best_iteration,
        "seconds": result.seconds,
        "first": first,
        "best": best,
    }
    return UnitResult(unit, entries, per_frame, texture, texture_name, environment, summary, result.history, seen)


def annotated_joints(frame: Frame, side: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One hand's 21 annotated joints (mm) and their validity from ``joint_3d.json`` (None, None without)."""
    if frame.joints is None:
        return None, None
    offset = 0 if side == "right" else 21
    return torch.tensor(frame.joints[offset : offset + 21]), torch.tensor(frame.joint_valid[offset : offset + 21])


def guarded(frames: list[Frame], initial: list, refined: list, first: dict, best: dict, diverged: bool, names):
    """Per frame, the annotation to publish and its record: ``initial[t]`` / ``refined[t]`` are a
    hand's HandParams or {side: HandParams} of the hands refined together; a frame whose refinement
    :func:`guard` flags keeps its input (every hand of it). ``first`` / ``best``: the history's
    records (SMVR: one frame's error; DMVR: per frame)."""
    if "backprojection_frames" in first:
        before, after = first["backprojection_frames"], best["backprojection_frames"]
        cameras_before, cameras_after = first["backprojection_cameras"], best["backprojection_cameras"]
    else:  # one frame: its error, and one error per camera
        before, after = [first["backprojection"]], [best["backprojection"]]
        cameras_before, cameras_after = [first["backprojection_cameras"]], [best["backprojection_cameras"]]
    entries, per_frame = {}, []
    for frame, start, params, b, a, cb, ca in zip(
        frames, initial, refined, before, after, cameras_before, cameras_after
    ):
        hands = params.values() if isinstance(params, dict) else [params]
        flag = guard(b, a, diverged, all(_finite(p) for p in hands))
        chosen = start if flag else params
        entries[frame.frame] = (
            {side: mano_entry(p) for side, p in chosen.items()} if isinstance(chosen, dict) else mano_entry(chosen)
        )
        per_frame.append(
            {
                "frame": frame.frame,
                "backprojection_before": float(b),
                "backprojection_after": float(a),
                "diverged": bool(diverged),
                "kept_input": bool(flag),
                "flag": flag,
                # per camera, as the methods measured them (the published annotation is the input where flagged)
                "cameras": {name: [float(x), float(y)] for name, x, y in zip(names, cb, ca)},
            }
        )
    return entries, per_frame


def refine_both(
    reader: InterHandReader, unit: Unit, options: Options, progress: bool = False, truth: list | None = None
) -> UnitResult:
    """Both hands of one frame (SMVR, :func:`handlib.methods.smvr.refine_hands`) or of a video
    (DMVR, :func:`handlib.methods.dmvr.refine_videos`: one light) refined together. A hand that is
    not annotated in every frame, or whose annotation was refused (``summary['refused']`` says
    why), is left out and the other refined alone; ``summary['notes']`` says so. ``entries`` map
    each frame to {side: entry} for the hands refined; ``truth``: per frame, {side: Truth}."""
    from handlib.model.hand import HandModel
    from handlib.rendering.colour import to_srgb8

    if options.method == "smvr" and len(unit.frames) != 1:
        raise ValueError("SMVR refines two hands together one frame per unit.")
    frames, names = load_frames(reader, unit, options.cameras)
    refused = {}
    for frame in frames:
        for side, reason in frame.invalid.items():
            refused.setdefault(side, reason if len(frames) == 1 else f"frame {frame.frame}: {reason}")
    sides = [s for s in SIDES if s not in refused and all(f.mano.get(s) is not None for f in frames)]
    notes = []
    for side in SIDES:
        if side in refused:
            notes.append(f"the {side} hand's annotation was refused ({refused[side]})")
        elif side not in sides:
            absent = [f.frame for f in frames if f.mano.get(side) is None]
            notes.append(
                f"the {side} hand is not annotated in frame{'s' * (len(absent) > 1)} {', '.join(map(str, absent))}"
            )
    if not sides:
        raise InputError(
            f"neither hand is annotated and valid in every frame of {list(unit.frames)}: {'; '.join(notes)}."
        )
    if len(sides) == 1:
        notes.append(f"refined the {sides[0]} hand alone")
        alone = refine_unit(reader, Unit(unit.capture, unit.seq, sides[0], unit.frames), options, progress)
        alone.entries = {f: {sides[0]: entry} for f, entry in alone.entries.items()}
        alone.unit = unit
        alone.summary.update(hand="both", hands=sides, notes=notes, refused=refused)
        return alone
    images = read_images(frames, names)
    cameras = [frames[0].cameras[c] for c in names]
    models = [HandModel(side, model_path=options.mano) for side in sides]
    initial = [{side: f.hand_params(side) for side in sides} for f in frames]
    environment = seen = None
    if options.method == "smvr":
        from handlib.methods.smvr import HandInput, SMVRSettings, refine_hands

        hands = [
            HandInput(model, initial[0][side], *annotated_joints(frames[0], side), truth[0][side] if truth else None)
            for side, model in zip(sides, models)
        ]
        settings = SMVRSettings(loss=options.loss, schedule=options.schedule, spp=options.spp)
        results = refine_hands(hands, cameras, images[0], settings, progress)
        refined = [{side: r.params for side, r in zip(sides, results)}]
        texture = np.concatenate([(r.texture.numpy() * 255.0 + 0.5).astype(np.uint8) for r in results], axis=1)
        texture_name = "colour_maps.png"
        seen = np.concatenate([r.seen for r in results], axis=1) if all(r.seen is not None for r in results) else None
    else:
        from handlib.methods.dmvr import DMVRSettings, VideoHand, refine_videos

        hands = [
            VideoHand(model, [start[side] for start in initial], [t[side] for t in truth] if truth else None)
            for side, model in zip(sides, models)
        ]
        settings = DMVRSettings(schedule=options.schedule, spp=options.spp)
        results = refine_videos(hands, cameras, images, [f.frame for f in frames], settings, progress)
        refined = [{side: r.params[t] for side, r in zip(sides, results)} for t in range(len(frames))]
        texture, texture_name = to_srgb8(np.concatenate([r.texture.numpy() for r in results], axis=1)), "textures.png"
        environment = results[0].light.tolist()
        seen = np.concatenate([r.seen for r in results], axis=1)
    history, best_iteration = results[0].history, results[0].best_iteration
    first, best = history[0], best_entry(history, best_iteration)
    entries, per_frame = guarded(frames, initial, refined, first, best, results[0].diverged, names)
    summary = {
        "capture": unit.capture,
        "seq": unit.seq,
        "hand": "both",
        "hands": sides,
        "frames": list(unit.frames),
        "cameras": names,
        "method": f"{options.method} (both hands together)",
        "diverged": results[0].diverged,
        "best_iteration": best_iteration,
        "seconds": results[0].seconds,
        "first": first,
        "best": best,
        "notes": notes,
        "refused": refused,
    }
    return UnitResult(unit, entries, per_frame, texture, texture_name, environment, summary, history, seen)


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write ``path`` so that it is either absent, its old content or the whole new content:
    a hidden temporary file in the same folder, flushed, then renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_unit_files(folder: str | Path, result: UnitResult) -> list[str]:
    """The unit's texture (PNG), the mask of its texels some camera saw (``visibility.png``, white:
    seen), environment (JSON, DMVR) and metrics (JSON), each written atomically into
    ``folder``; the names written."""
    folder = Path(folder)
    ok, png = cv2.imencode(".png", cv2.cvtColor(result.texture, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode the texture of {result.unit.key} as PNG.")
    atomic_write(folder / result.texture_name, png.tobytes())
    written = [result.texture_name]
    if result.seen is not None:
        ok, mask = cv2.imencode(".png", result.seen.astype(np.uint8) * 255)
        atomic_write(folder / "visibility.png", mask.tobytes())
        written.append("visibility.png")
    if result.environment is not None:
        atomic_write(
            folder / "environment.json",
            json.dumps({"sh_coefficients": result.environment, "convention": "real SH, bands^2 x RGB, world frame"}),
        )
        written.append("environment.json")
    atomic_write(
        folder / "metrics.json",
        json.dumps({**result.summary, "frames_metrics": result.frames, "history": result.history}, indent=1),
    )
    return written + ["metrics.json"]
