"""Synthetic frames of two interacting hands, with truths that touch but do not pass through each other.

An :class:`Interaction` names a gesture for each hand and how the left hand is held against the
right one, in the right palm's frame (distal: wrist to middle finger; radial: toward the thumb;
palmar: out of the palm; :func:`handlib.model.anatomy.palm_frame`): the left palm's axes, the
point of each hand that meets the other (``anchors``) and the direction the left hand comes from.
The left hand is placed with its anchor on the right's and then backed off along that direction to
the first position where neither hand has a vertex inside the other (bisection on ray-crossing
inside tests, then :data:`CLEARANCE_MM` more), so the hands touch. A gripping interaction
(``grip``: one hand holding the other's finger) then closes the left hand toward the grip's gesture
until its fingers first touch the right hand; an interleaving one (fingers interlocked) first
slides the left hand across so that its fingertips face the gaps between the right's, then
comes in from afar in steps to the first touch. A frame varies the pair's
orientation, the left hand's tilt (up to :data:`TILT_DEG`, or the interaction's ``tilt_deg``) and its anchor (up to
:data:`SLIDE_MM` along the right palm) with the seed; each hand has its own shape and skin.

:func:`draw_pair_video` draws a video coming into one interaction, :func:`draw_pair_transition`
one going from an interaction to another.

Only the idealised benchmark exists for two hands: both truths are hands of the fitted model
(no :mod:`handlib.data.mismatch`), the images are rendered by the renderer the refinement uses,
and the camera noise and blur of :mod:`handlib.data.realism` are applied when asked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp

from handlib.data.interhand import NUM_JOINTS, InterHandWriter, mano_entry, write_mano_annotations
from handlib.data.realism import IDEAL, Realism, defocus, sensor_noise
from handlib.data.synth import HAND_CENTRE_MM, Subject, make_subject, perturb, rig_cameras, studio_light
from handlib.geometry.cameras import Camera
from handlib.geometry.penetration import intersection_volume, surface_distance
from handlib.geometry.surface import HandSurface, side_by_side
from handlib.model.anatomy import palm_frame
from handlib.model.gestures import gesture, gesture_pose, model_hand_pose
from handlib.model.hand import HandModel, HandParams, Truth, as_truth
from handlib.rendering.colour import to_srgb8
from handlib.rendering.inside import hand_depths, inside_closed, mutually_inside
from handlib.rendering.renderer import Renderer, RenderSettings
from handlib.rendering.texture import SkinStyle, model_skin_texture

#: Gap left between the hands once they no longer pass through each other (mm).
CLEARANCE_MM = 0.3
#: Contact: vertices of one hand within this distance of the other's surface (the issue's 2 mm).
CONTACT_MM = 2.0
#: Monte Carlo samples of the intersection volume (inside tests by ray crossings): one sample stands
#: for ~5 mm^3 of the overlap of two hands' bounding boxes (~0.5 litre for hands palm to palm).
VOLUME_SAMPLES = 100_000
#: Per-frame variation: the left hand's tilt about a random axis and its anchor's slide (uniform bounds).
TILT_DEG, SLIDE_MM = 10.0, 8.0
#: A video (:func:`draw_pair_video`): how far the left hand comes from (mm) and how far the pair turns (deg).
APPROACH_MM, TURN_DEG = 15.0, 12.0
#: A transition (:func:`draw_pair_transition`) lifts the left hand this far off the right midway (mm).
LIFT_MM = 30.0
#: A gripping hand stops this share of the way short of the closure where it touches the other hand.
GRIP_MARGIN = 0.003

#: Anchors: the point of a hand that meets the other, from its 21 joints (InterHand2.6M order).
ANCHORS = {
    "palm": (20, 7, 11, 15, 19),  # wrist and the four finger bases
    "knuckles": (7, 11, 15, 19),  # the finger bases (a fist's front)
    "index_tip": (4,),
    "index_distal": (4, 5),  # the index finger's last phalanx (tip and last joint)
}
#: The four fingers' tips (index to little), which :attr:`Interaction.interleave` sets between each other.
FINGERTIPS = (4, 8, 12, 16)


@dataclass(frozen=True)
class Interaction:
    """Two hands' gestures and how they meet. ``left_axes``: the left palm's (distal, radial,
    palmar) as rows, in the right palm's frame; a mirrored hand's frame is reflected, so the rows
    must have determinant -1. ``approach``: the direction (right palm's frame) the left hand comes
    from; ``anchors``: the right's point and the left's (keys of :data:`ANCHORS`)."""

    right: str
    left: str
    left_axes: tuple[tuple[float, float, float], ...]
    approach: tuple[float, float, float]
    anchors: tuple[str, str] = ("palm", "palm")
    grip: str | None = None  # a gesture the placed left hand closes toward until it touches the right
    interleave: bool = False  # the left fingertips slid between the right's (fingers interlocked)
    tilt_deg: float = TILT_DEG  # the per-frame tilt's bound

    def __post_init__(self) -> None:
        gesture(self.right), gesture(self.left)
        if self.grip is not None:
            gesture(self.grip)
        axes = np.asarray(self.left_axes, dtype=np.float64)
        if axes.shape != (3, 3) or not np.allclose(axes @ axes.T, np.eye(3), atol=1e-6):
            raise ValueError("left_axes must be three orthonormal rows (distal, radial, palmar).")
        if np.linalg.det(axes) > 0:
            raise ValueError("left_axes must be a reflection (determinant -1): the left hand is the mirror image.")
        if not 0.0 <= self.tilt_deg <= 45.0:
            raise ValueError(f"tilt_deg must be within 0..45 degrees, got {self.tilt_deg}.")
        if any(anchor not in ANCHORS for anchor in self.anchors):
            raise ValueError(f"anchors must be among {sorted(ANCHORS)}, got {self.anchors}.")


def _unit(*v: float) -> tuple[float, float, float]:
    a = np.asarray(v, dtype=np.float64)
    return tuple(float(x) for x in a / np.linalg.norm(a))


#: The direction of the right index finger's last phalanx in the "point" gesture, in the right
#: palm's frame (measured on the open hand model at mean shape: it rises 23 degrees off the palm).
POINTING = (0.915, 0.087, -0.393)


def _holding(direction, anchors: tuple[str, str], right: str, left: str, grip: str) -> Interaction:
    """The left hand gripping a part of the right that runs along ``direction`` (right palm's frame):
    the left palm parallel to it, its thumb toward where it points, coming from the palmar side."""
    radial = np.asarray(_unit(*direction))
    up = np.array([0.0, 0.0, 1.0]) - radial[2] * radial  # the right palm's normal, made perpendicular
    palmar = -up / np.linalg.norm(up)
    distal = np.cross(palmar, radial)  # rows distal, radial, palmar: a reflection (determinant -1)
    axes = tuple(tuple(float(x) for x in row) for row in (distal, radial, palmar))
    return Interaction(right, left, axes, tuple(float(x) for x in -palmar), anchors, grip)


INTERACTIONS: dict[str, Interaction] = {
    # Palms pressed together, fingers up, thumbs on the same side (as in a prayer).
    "palm_on_palm": Interaction("relaxed", "relaxed", ((1, 0, 0), (0, 1, 0), (0, 0, -1)), (0, 0, 1)),
    # The right palm on the back of the left hand, both flat.
    "palm_on_back": Interaction("relaxed", "open", ((1, 0, 0), (0, -1, 0), (0, 0, 1)), (0, 0, 1)),
    # Palms facing, fingers pointing opposite ways, as two hands about to clasp.
    "clasp": Interaction("relaxed", "relaxed", ((-1, 0, 0), (0, -1, 0), (0, 0, -1)), (0, 0, 1)),
    # The right index fingertip touching the left palm, which faces it.
    "touch": Interaction(
        "point", "relaxed", ((0, 1, 0), (0, 0, 1), (-1, 0, 0)), _unit(1, 0, 0.3), ("index_tip", "palm")
    ),
    # A right fist pressed into the open left palm.
    "fist_in_palm": Interaction(
        "fist", "relaxed", ((0, -1, 0), (0, 0, -1), (-1, 0, 0)), _unit(1, 0, 0.2), ("knuckles", "palm")
    ),
    # The left hand holding the right index finger: the finger's end laid across the left palm at
    # its middle and ring finger bases (entering on the little finger's side, its tip toward the left
    # thumb, which stays clear of the right's curled fingers), then the left fingers closed around it.
    "hold_finger": _holding(POINTING, ("index_distal", "palm"), "point", "open", "fist"),
    # Fingers interlocked: two spread hands, palms facing opposite ways in one plane, fingertips
    # toward each other, the left fingers pushed between the right ones until they first touch.
    "interlock": Interaction(
        "spread",
        "spread",
        ((-1, 0, 0), (0, -1, 0), (0, 0, -1)),
        (1, 0, 0),
        ("knuckles", "knuckles"),
        interleave=True,
        tilt_deg=3.0,
    ),
}


def interaction(name: str) -> Interaction:
    if name not in INTERACTIONS:
        raise ValueError(f"Unknown interaction {name!r}; known: {', '.join(INTERACTIONS)}.")
    return INTERACTIONS[name]


def _frame(joints16: np.ndarray, side: str) -> np.ndarray:
    """(3, 3) rows distal, radial, palmar of a posed hand's palm (world)."""
    return np.stack(palm_frame(joints16, side))


def _anchor(joints21: torch.Tensor, name: str) -> np.ndarray:
    return joints21[list(ANCHORS[name])].double().mean(0).numpy()


def placed(model: HandModel, params: HandParams, rotation: np.ndarray, offset_mm: np.ndarray) -> HandParams:
    """``params`` moved rigidly: its hand's vertices v become ``rotation @ v + offset_mm``."""
    with torch.no_grad():
        root = model(params).joints[0, 0].double().numpy()
    turned = Rotation.from_matrix(rotation) * Rotation.from_rotvec(params.global_orient[0].double().numpy())
    # MANO turns the hand about its root joint, which sits at (rest root + transl): v = R (v0 - j) + j + t.
    # So the new root is rotation @ root + offset, and transl moves by what the root moves.
    transl_mm = params.transl[0].double().numpy() * 1000.0 + rotation @ root + offset_mm - root
    return HandParams(
        torch.tensor(turned.as_rotvec(), dtype=params.global_orient.dtype)[None],
        params.hand_pose,
        params.betas,
        torch.tensor(transl_mm / 1000.0, dtype=params.transl.dtype)[None],
    )


@dataclass
class PairHand:
    """One hand of an interacting frame: its truth, the noisy estimate a refinement starts from and
    the noisy annotated joints (21, 3) mm, as :class:`handlib.methods.smvr.HandInput` takes them."""

    side: str
    model: HandModel
    truth_params: HandParams
    truth: Truth
    initial: HandParams
    joints: torch.Tensor
    texture: torch.Tensor = field(repr=False)
    initial_error_mm: float = 0.0


@dataclass
class PairFrame:
    """A synthetic frame of two interacting hands: cameras, images (uint8 (H, W, 3)), the right
    and the left hand, and each hand's vertices in contact with the other in the truth."""

    interaction: str
    seed: int
    cameras: list[Camera]
    images: list[np.ndarray] = field(repr=False)
    hands: tuple[PairHand, PairHand]
    contact: tuple[torch.Tensor, torch.Tensor] = field(repr=False)

    @property
    def surfaces(self) -> list[HandSurface]:
        return [HandSurface.of(hand.model) for hand in self.hands]


@dataclass(frozen=True)
class PairSettings:
    """What an interacting frame is drawn with (image size InterHand2.6M's / ``shrink``)."""

    cameras: int = 8
    shrink: int = 4
    spp: int = 16
    texture_size: int = 512
    noise_mm: float = 5.0
    joint_noise_mm: float | None = None  # default: noise_mm
    realism: Realism = IDEAL  # only the image effects (defocus, noise) are applied

    def __post_init__(self) -> None:
        if self.cameras < 1 or self.shrink < 1 or self.spp < 1 or self.noise_mm < 0:
            raise ValueError("cameras, shrink and spp must be at least 1 and noise_mm at least 0.")


def hands_apart(surfaces, closed: list[torch.Tensor]) -> bool:
    """True when no vertex of either closed hand lies inside the other (ray-crossing test)."""
    return not any(bool(w.any()) for w in mutually_inside(surfaces, closed))


def pose_pair(
    models: tuple[HandModel, HandModel], spec: Interaction, betas: np.ndarray, rng: np.random.Generator
) -> tuple[HandParams, HandParams]:
    """The right and left hands' parameters for ``spec``: touching, apart (see the module's text),
    the pair's centroid at the synthetic rig's centre. ``betas`` (2, 10): each hand's shape."""
    right, left_at, touching, closure = _arrange(models, spec, betas, rng)
    return _centred(models, (right, left_at(touching, closure)))


def _arrange(
    models: tuple[HandModel, HandModel],
    spec: Interaction,
    betas: np.ndarray,
    rng: np.random.Generator,
    orient: np.ndarray | None = None,
) -> tuple[HandParams, Callable[[float, float], HandParams], float, float]:
    """The right hand (turned by ``orient``, a rotation vector; default: at random); the left hand
    as a function of how far (mm) it is backed off along the approach from its anchor on the
    right's and how far (0..1) it has closed toward ``spec.grip``; the distance at which the open
    left hand touches the right (apart by :data:`CLEARANCE_MM`) and the closure at which the
    gripping hand touches it (0 without a grip)."""
    right_model, left_model = models
    if orient is None:
        orient = Rotation.random(random_state=rng).as_rotvec()
    right = _gesture_params(right_model, spec.right, betas[0], orient)
    left = _gesture_params(left_model, spec.left, betas[1], np.zeros(3))
    with torch.no_grad():
        out_r, out_l = right_model(right), left_model(left)
    frame_r = _frame(out_r.joints[0].double().numpy(), "right")
    frame_l = _frame(out_l.joints[0].double().numpy(), "left")
    tilt = Rotation.from_rotvec(_random_unit(rng) * math.radians(rng.uniform(0, spec.tilt_deg))).as_matrix()
    wanted = (np.asarray(spec.left_axes) @ frame_r) @ tilt.T  # rows: the left palm's axes in the world
    rotation = wanted.T @ frame_l
    away = np.asarray(spec.approach) @ frame_r
    slide = SLIDE_MM * (rng.uniform(-1, 1) * frame_r[0] + rng.uniform(-1, 1) * frame_r[1])
    start = _anchor(out_r.joints21[0], spec.anchors[0]) + slide - rotation @ _anchor(out_l.joints21[0], spec.anchors[1])
    if spec.interleave:
        start = start + _interleaving_shift(
            out_r.joints21[0], out_l.joints21[0].double().numpy() @ rotation.T + start, frame_r[1]
        )
    surfaces = [HandSurface.of(right_model), HandSurface.of(left_model)]
    closed_r = surfaces[0].close(out_r.vertices[0].double())

    grip = (
        left.hand_pose if spec.grip is None else _gesture_params(left_model, spec.grip, betas[1], np.zeros(3)).hand_pose
    )

    def left_at(distance: float, closure: float = 0.0) -> HandParams:
        closing = HandParams(
            left.global_orient, left.hand_pose + closure * (grip - left.hand_pose), left.betas, left.transl
        )
        return placed(left_model, closing, rotation, start + distance * away)

    def apart(distance: float, closure: float = 0.0) -> bool:
        with torch.no_grad():
            closed_l = surfaces[1].close(left_model(left_at(distance, closure)).vertices[0].double())
        return hands_apart(surfaces, [closed_r, closed_l])

    low, high = 0.0, 200.0
    if not apart(high):
        raise RuntimeError(f"Could not separate the hands of {spec} within {high} mm.")
    if spec.interleave:  # fingers sliding between fingers can touch, then part: come in from afar
        with torch.no_grad():  # from where the hands' extents along the approach just part
            reach = float((out_r.vertices[0].double().numpy() @ away).max())
            back = float(((left_model(left_at(0.0)).vertices[0].double().numpy()) @ away).min())
        low = max(reach - back + 1.0, 2.0)
        while apart(low):
            low, high = low - 2.0, low
            if low < 0.0:
                raise RuntimeError(f"The fingers of {spec} pass each other without touching.")
    while apart(low):  # the anchors met without the hands touching: come closer
        low -= 5.0
        if low < -100.0:
            raise RuntimeError(f"The hands of {spec} do not meet within 100 mm of their anchors.")
    touching = _first_apart(apart, low, high, 24) + CLEARANCE_MM  # to 0.02 mm
    if spec.grip is None:
        return right, left_at, touching, 0.0
    # The left hand closes around the right until its fingers first touch it (steps of 1/20 of the
    # way, then bisection): a closed hand can have swept through the other on its way.
    steps = np.linspace(0.0, 1.0, 21)
    opened = next((float(a) for a, b in zip(steps, steps[1:]) if not apart(touching, float(b))), None)
    if opened is None:
        return right, left_at, touching, 1.0
    shut = opened + 0.05
    for _ in range(8):  # to 0.0002 of the way
        middle = (opened + shut) / 2
        opened, shut = (middle, shut) if apart(touching, middle) else (opened, middle)
    return right, left_at, touching, max(opened - GRIP_MARGIN, 0.0)


def _first_apart(apart: Callable[[float], bool], low: float, high: float, steps: int) -> float:
    """Bisection between ``low`` (the hands overlap) and ``high`` (apart): the smallest value
    found apart after ``steps`` halvings."""
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (low, middle) if apart(middle) else (middle, high)
    return high


def _interleaving_shift(right21: torch.Tensor, left21: np.ndarray, across: np.ndarray) -> np.ndarray:
    """The shift along ``across`` (a unit vector across the fingers) that puts three of the left
    hand's fingertips midway between the right's four, whichever of the two ways is the shorter
    (the left index finger outside the right's, or inside). ``left21``: the placed left joints."""
    right = np.sort(right21[list(FINGERTIPS)].double().numpy() @ across)
    left = np.sort(np.asarray(left21)[list(FINGERTIPS)] @ across)
    gaps = (right[:-1] + right[1:]) / 2
    shift = min((float(np.mean(gaps - left[:3])), float(np.mean(gaps - left[1:]))), key=abs)
    return shift * across


def _centred(
    models: tuple[HandModel, HandModel], pair: tuple[HandParams, HandParams], turn: np.ndarray = np.eye(3)
) -> tuple[HandParams, HandParams]:
    """The pair moved rigidly so that its vertices' centroid is the rig's centre, then turned by
    ``turn`` (3, 3) about that centre."""
    with torch.no_grad():
        centre = torch.cat([m(p).vertices[0] for m, p in zip(models, pair)]).double().mean(0).numpy()
    offset = HAND_CENTRE_MM - turn @ centre
    return placed(models[0], pair[0], turn, offset), placed(models[1], pair[1], turn, offset)


def _random_unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _gesture_params(model: HandModel, name: str, betas: np.ndarray, orient: np.ndarray) -> HandParams:
    pose = gesture_pose(name, model.rest_joints, model.side)
    return HandParams.create(
        1,
        hand_pose=model_hand_pose(model, pose),
        global_orient=torch.tensor(orient, dtype=torch.float32)[None],
        betas=torch.tensor(betas, dtype=torch.float32)[None],
    )


def contact_vertices(
    surfaces, vertices: list[torch.Tensor], within_mm: float = CONTACT_MM, closed: list[torch.Tensor] | None = None
) -> list[torch.Tensor]:
    """Per hand, (V_k,) bool: its model vertices within ``within_mm`` of the other hand's closed
    surface (or inside it); ``closed``: the hands' closed vertices when already at hand."""
    if closed is None:
        closed = [s.close(v.detach().double()) for s, v in zip(surfaces, vertices)]
    out = []
    for k in range(2):
        other = 1 - k
        points = vertices[k].detach().double()
        near = surface_distance(points, closed[other], surfaces[other].faces) < within_mm
        inner = inside_closed(surfaces[other], closed[other], points)
        out.append(near | inner)
    return out


def _person(models: tuple[HandModel, HandModel], settings: PairSettings, rng: np.random.Generator) -> list[Subject]:
    """One person: the same shape and skin tone for both hands, each hand its own skin detail."""
    right_subject = make_subject(models[0], settings.texture_size, rng)
    left_texture = model_skin_texture(
        models[1],
        SkinStyle(tone=right_subject.tone),
        right_subject.betas,
        int(rng.integers(2**31)),
        settings.texture_size,
    )
    return [right_subject, Subject(right_subject.betas, right_subject.tone, left_texture)]


def _frames(
    name: str,
    seed: int,
    settings: PairSettings,
    models: tuple[HandModel, HandModel],
    subjects: list[Subject],
    truths: list[tuple[HandParams, HandParams]],
    rng: np.random.Generator,
) -> list[PairFrame]:
    """Frames of the pair at ``truths`` (one (right, left) per frame), seen by one rig under one
    light; each frame's estimates and joints noisy on their own."""
    rng_real = np.random.default_rng([seed, 4])
    cameras = rig_cameras(settings.cameras, settings.shrink, seed)
    surfaces = [HandSurface.of(model) for model in models]
    renderer = Renderer(
        cameras, HandSurface.together(surfaces), RenderSettings(mode="radiance", spp=settings.spp, seed=seed)
    )
    light = studio_light(0.0, rng)
    joint_noise = settings.noise_mm if settings.joint_noise_mm is None else settings.joint_noise_mm
    sigma = joint_noise / (2.0 * math.sqrt(2.0 / math.pi))  # mean norm of a 3D Gaussian: 2 sigma sqrt(2/pi)
    frames = []
    for pair in truths:
        with torch.no_grad():
            vertices = [model(params).vertices[0] for model, params in zip(models, pair)]
            rendered = renderer.render(
                torch.cat(vertices),
                side_by_side([s.texture for s in subjects]),
                light,
                backgrounds=[(0.03, 0.03, 0.035)] * len(cameras),
            )
        if not hands_apart(surfaces, [s.close(v.double()) for s, v in zip(surfaces, vertices)]):
            raise RuntimeError(f"The truths of {name} (seed {seed}) pass through each other in a frame.")
        images = []
        for image in rendered.images:
            linear = np.ascontiguousarray(image.numpy(), dtype=np.float32)
            linear = defocus(linear, settings.realism.defocus_px / settings.shrink)
            linear = sensor_noise(linear, settings.realism.read_noise, settings.realism.shot_noise, rng_real)
            images.append(to_srgb8(linear))
        hands = []
        for model, params, subject in zip(models, pair, subjects):
            truth = as_truth(model, params)
            initial, reached = perturb(model, params, settings.noise_mm, rng)
            joints = truth.joints21 + torch.as_tensor(rng.normal(scale=sigma, size=(21, 3)), dtype=torch.float32)
            hands.append(PairHand(model.side, model, params, truth, initial, joints, subject.texture, reached))
        contact = contact_vertices(surfaces, vertices)
        frames.append(PairFrame(name, seed, cameras, images, (hands[0], hands[1]), (contact[0], contact[1])))
    return frames


def draw_pair(name: str, seed: int, settings: PairSettings = PairSettings()) -> PairFrame:
    """One synthetic frame of the interaction ``name`` (see :data:`INTERACTIONS`), all from ``seed``."""
    spec = interaction(name)
    rng = np.random.default_rng([seed, 3])
    models = (HandModel("right"), HandModel("left"))
    subjects = _person(models, settings, rng)
    truths = pose_pair(models, spec, np.stack([s.betas for s in subjects]), rng)
    return _frames(name, seed, settings, models, subjects, [truths], rng)[0]


def draw_pair_video(
    name: str,
    seed: int,
    frames: int = 3,
    settings: PairSettings = PairSettings(),
    approach_mm: float = APPROACH_MM,
    turn_deg: float = TURN_DEG,
) -> list[PairFrame]:
    """A synthetic video of the interaction ``name``: the left hand comes ``approach_mm`` along its
    approach into the touching pose of the last frame (a gripping interaction: closes its grip from
    open) while the pair turns by ``turn_deg`` about a random axis through the rig's centre; one
    rig, light and person throughout, every frame's estimates noisy on their own, every frame's
    truths apart (checked)."""
    if frames < 1 or approach_mm < 0:
        raise ValueError(f"Need at least one frame and approach_mm >= 0, got {frames} and {approach_mm}.")
    spec = interaction(name)
    rng = np.random.default_rng([seed, 3])
    models = (HandModel("right"), HandModel("left"))
    subjects = _person(models, settings, rng)
    right, left_at, touching, closure = _arrange(models, spec, np.stack([s.betas for s in subjects]), rng)
    axis = _random_unit(rng)
    truths = []
    for t in range(frames):
        left_to_go = (frames - 1 - t) / max(frames - 1, 1)  # 1 in the first frame, 0 in the last
        turn = Rotation.from_rotvec(axis * math.radians(turn_deg * (1 - left_to_go))).as_matrix()
        if spec.grip is None:
            left = left_at(touching + approach_mm * left_to_go)
        else:  # a grip closes in place (backing off would pull the closed fingers through the other hand)
            left = left_at(touching, closure * (1 - left_to_go))
        truths.append(_centred(models, (right, left), turn))
    return _frames(name, seed, settings, models, subjects, truths, rng)


def draw_pair_transition(
    first: str,
    second: str,
    seed: int,
    frames: int = 5,
    settings: PairSettings = PairSettings(),
    lift_mm: float = LIFT_MM,
) -> list[PairFrame]:
    """A synthetic video from the interaction ``first`` to ``second``: the first frame holds the
    hands as ``first`` places them, the last as ``second`` does (the right hand in the same
    orientation), and between them both hands' poses and the left hand's placement are
    interpolated (rotations along the shortest arc) while the left hand is lifted off the right by
    up to ``lift_mm`` (a half sine over the video) and further where the in-between hands would
    pass through each other (bisection, then :data:`CLEARANCE_MM`). One rig, light and person;
    every frame's estimates noisy on their own; the frames are named ``<first>_to_<second>``."""
    if frames < 2 or lift_mm < 0:
        raise ValueError(f"A transition needs at least two frames and lift_mm >= 0, got {frames} and {lift_mm}.")
    specs = interaction(first), interaction(second)
    rng = np.random.default_rng([seed, 5])
    models = (HandModel("right"), HandModel("left"))
    subjects = _person(models, settings, rng)
    betas = np.stack([s.betas for s in subjects])
    orient = Rotation.random(random_state=rng).as_rotvec()
    ends = []
    for spec in specs:
        right, left_at, touching, closure = _arrange(models, spec, betas, rng, orient)
        ends.append((right, left_at(touching, closure)))
    surfaces = [HandSurface.of(model) for model in models]
    truths = []
    for t in np.linspace(0.0, 1.0, frames):
        right, left = (_between_params(ends[0][k], ends[1][k], float(t)) for k in range(2))
        with torch.no_grad():
            out = [model(params).vertices[0].double() for model, params in zip(models, (right, left))]
        up = (out[1].mean(0) - out[0].mean(0)).numpy()
        up /= np.linalg.norm(up)
        closed_r = surfaces[0].close(out[0])

        def lifted(extra: float, left=left, up=up) -> HandParams:
            return placed(models[1], left, np.eye(3), extra * up)

        def apart(extra: float, lifted=lifted, closed_r=closed_r) -> bool:
            with torch.no_grad():
                closed_l = surfaces[1].close(models[1](lifted(extra)).vertices[0].double())
            return hands_apart(surfaces, [closed_r, closed_l])

        extra = lift_mm * math.sin(math.pi * t) if 0.0 < t < 1.0 else 0.0
        if not apart(extra):
            low, high = extra, extra + 10.0
            while not apart(high):
                low, high = high, high + 10.0
                if high > 300.0:
                    raise RuntimeError(f"Could not part the hands between {first} and {second} (seed {seed}).")
            extra = _first_apart(apart, low, high, 20) + CLEARANCE_MM
        truths.append(_centred(models, (right, lifted(extra))))
    return _frames(f"{first}_to_{second}", seed, settings, models, subjects, truths, rng)


def _between_params(a: HandParams, b: HandParams, t: float) -> HandParams:
    """``t`` of the way from ``a`` to ``b``: the global rotation along the shortest arc, the joint
    rotations, shape and translation linearly."""
    turns = Rotation.from_rotvec(np.stack([a.global_orient[0].double().numpy(), b.global_orient[0].double().numpy()]))
    orient = Slerp([0.0, 1.0], turns)([t]).as_rotvec()
    return HandParams(
        torch.tensor(orient, dtype=a.global_orient.dtype),
        a.hand_pose + t * (b.hand_pose - a.hand_pose),
        a.betas + t * (b.betas - a.betas),
        a.transl + t * (b.transl - a.transl),
    )


def interaction_errors(surfaces, vertices: list[torch.Tensor], truth_contact) -> dict[str, float]:
    """How two refined hands (model vertices, mm) sit against each other: the deepest penetration
    (mm) of either into the other, the volume inside both (mm^3, Monte Carlo) and the share of the
    truth's contact vertices still in contact (within :data:`CONTACT_MM`)."""
    closed = [s.close(v.detach().double()) for s, v in zip(surfaces, vertices)]
    faces = [s.faces for s in surfaces]
    depths = hand_depths(surfaces, closed)
    now = contact_vertices(surfaces, vertices, closed=closed)
    wanted = int(sum(int(c.sum()) for c in truth_contact))
    kept = sum(int((c & n).sum()) for c, n in zip(truth_contact, now))
    return {
        "penetration_mm": float(depths.max()),
        "intersection_mm3": intersection_volume(
            closed[0],
            faces[0],
            closed[1],
            faces[1],
            samples=VOLUME_SAMPLES,
            contains=(
                lambda p: inside_closed(surfaces[0], closed[0], p),
                lambda p: inside_closed(surfaces[1], closed[1], p),
            ),
        ),
        "contact_kept": kept / wanted if wanted else float("nan"),
    }


def write_pairs(out: str | Path, frames: list[PairFrame | list[PairFrame]], split: str = "test") -> Path:
    """Write interacting frames as a capture in InterHand2.6M's layout, both hands annotated (their
    noisy estimates and joints), one capture per frame or per video (a list of frames of one rig,
    as :func:`draw_pair_video` draws it, numbered 0, 1, ...) with the sequence
    ``synthetic_<interaction>``, and the truth beside it in ``ground_truth/`` as
    :func:`handlib.data.synth.synthesize` writes it (readable by :func:`~handlib.data.synth.read_truths`)."""
    out = Path(out)
    writer = InterHandWriter(out, split)
    truth_mano, truth_joints, truth_vertices = {}, {}, {}
    scene = {"interactions": {}, "floor_vertex_error_mm": {}, "initial_vertex_error_mm": {}, "contact_vertices": {}}
    for capture, video in enumerate(frames):
        video = video if isinstance(video, list) else [video]
        key = str(capture)
        scene["interactions"][key] = {"interaction": video[0].interaction, "seed": video[0].seed}
        truth_mano[capture], truth_joints[key] = {}, {}
        for name in ("floor_vertex_error_mm", "initial_vertex_error_mm", "contact_vertices"):
            scene[name][key] = {}
        for number, frame in enumerate(video):
            joints, true_joints = np.zeros((NUM_JOINTS, 3)), np.zeros((NUM_JOINTS, 3))
            for offset, hand in zip((0, 21), frame.hands):
                joints[offset : offset + 21] = hand.joints.double().numpy()
                true_joints[offset : offset + 21] = hand.truth.joints21.double().numpy()
                truth_vertices[f"{capture}_{number}_{hand.side}"] = hand.truth.vertices.numpy().astype(np.float32)
            images = {camera.name: image for camera, image in zip(frame.cameras, frame.images)}
            initial = {hand.side: mano_entry(hand.initial) for hand in frame.hands}
            writer.add_frame(
                capture,
                f"synthetic_{frame.interaction}",
                number,
                frame.cameras,
                images,
                initial,
                joints,
                None,
                "interacting",
            )
            truth_mano[capture][number] = {hand.side: mano_entry(hand.truth_params) for hand in frame.hands}
            truth_joints[key][str(number)] = {
                "world_coord": true_joints.tolist(),
                "joint_valid": np.ones((NUM_JOINTS, 1)).tolist(),
                "hand_type": "interacting",
                "hand_type_valid": 1,
            }
            scene["floor_vertex_error_mm"][key][str(number)] = 0.0
            scene["initial_vertex_error_mm"][key][str(number)] = {h.side: h.initial_error_mm for h in frame.hands}
            scene["contact_vertices"][key][str(number)] = {
                h.side: int(c.sum()) for h, c in zip(frame.hands, frame.contact)
            }
    writer.close()
    folder = out / "ground_truth"
    folder.mkdir(parents=True, exist_ok=True)
    write_mano_annotations(folder / "MANO_NeuralAnnot.json", truth_mano)
    np.savez_compressed(folder / "vertices.npz", **truth_vertices)
    (folder / "joint_3d.json").write_text(json.dumps(truth_joints))
    (folder / "scene.json").write_text(json.dumps(scene, indent=1))
    return out
