"""Synthetic InterHand2.6M-like captures with perfect ground truth.

A capture is one subject (shape + procedural skin) performing a sequence that moves
between named gestures with global motion, filmed by a dome of calibrated cameras
under a studio-like SH light, and written in InterHand2.6M's layout
(:mod:`handlib.data.interhand`). What a refinement method gets as its starting point is
written where InterHand2.6M has its annotations: ``MANO_NeuralAnnot.json`` holds
*noisy* MANO parameters (at a requested mean per-vertex error, SMVR's noise level)
and ``joint_3d.json`` noisy joints. The truth goes beside it, in ``ground_truth/``:
the true parameters and joints in the same schema, the skin textures, the light,
each camera's colour response and the occluder bars.

Everything is drawn from one seed, so a capture is reproducible bit for bit.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from handlib.data.interhand import NUM_JOINTS, InterHandWriter, load_json, mano_entry, write_mano_annotations
from handlib.data.mismatch import (
    Mismatch,
    TrueSurface,
    deform_rest,
    draw_proportions,
    fit_to_surface,
    shaped_rest,
    true_model,
)
from handlib.data.realism import (
    IDEAL,
    Realism,
    clutter_background,
    defocus,
    miscalibrate,
    reprojection_rms,
    sensor_noise,
    working_volume,
)
from handlib.geometry.cameras import dome_cameras
from handlib.model.gestures import gesture, gesture_pose, model_hand_pose
from handlib.model.hand import HandModel, HandParams, Truth, as_truth
from handlib.rendering import lighting
from handlib.rendering.colour import to_srgb8
from handlib.rendering.renderer import Renderer, RenderSettings
from handlib.rendering.texture import SKIN_TONES, SkinStyle, model_skin_texture

#: Largest ``ground_truth/vertices.npz`` read (a 10k-frame capture of 1609-vertex hands is ~200 MB).
MAX_TRUTH_BYTES = 2 * 1024**3

#: Where the hand sits in the world (mm) and how far the dome's cameras are from it.
HAND_CENTRE_MM = np.array([0.0, 0.0, 1000.0])
DOME_RADIUS_MM = 1000.0


@dataclass(frozen=True)
class SynthSettings:
    """What to synthesise. Image size is InterHand2.6M's divided by ``shrink``."""

    cameras: int = 8
    gestures: tuple[str, ...] = ("open", "fist")
    subjects: int = 1
    frames: int = 1
    # The stretch of the motion through ``gestures`` that the frames sample, as fractions of it:
    # (0, 1) all of it; (4/9, 5/9) two neighbouring samples from the middle of a 10-frame video.
    motion: tuple[float, float] = (0.0, 1.0)
    noise_mm: float = 5.0
    joint_noise_mm: float | None = None  # mean 3D error of the noisy joints; default = noise_mm
    seed: int = 0
    spp: int = 16
    texture_size: int = 1024
    shrink: int = 1
    directional_light: float = 0.0  # 0: near-uniform studio light; ~1: a strong key light, shadows
    colour_response: float = 0.0  # spread of each camera's 3x4 colour transform around identity
    occluded_views: float = 0.0  # fraction of views with a bar in front of the hand
    background: tuple[float, float, float] = (0.03, 0.03, 0.035)  # linear RGB behind the hand (no clutter)
    split: str = "test"
    # The realistic benchmark: a true hand outside the model's span (None: a model hand) and a real
    # camera's noise, blur, JPEG, calibration error and cluttered background (IDEAL: none of them).
    mismatch: Mismatch | None = None
    realism: Realism = IDEAL

    def __post_init__(self) -> None:
        for name in self.gestures:
            gesture(name)  # ValueError for unknown names
        if self.cameras < 1 or self.subjects < 1 or self.frames < 1:
            raise ValueError("cameras, subjects and frames must all be at least 1.")
        if self.noise_mm < 0 or self.shrink < 1 or self.texture_size < 16:
            raise ValueError("noise_mm must be >= 0, shrink >= 1, texture_size >= 16.")
        if not 0.0 <= self.occluded_views <= 1.0:
            raise ValueError(f"occluded_views is a fraction in [0, 1], got {self.occluded_views}.")
        if len(self.motion) != 2 or not 0.0 <= self.motion[0] <= self.motion[1] <= 1.0:
            raise ValueError(f"motion is a stretch (start, end) with 0 <= start <= end <= 1, got {self.motion}.")


def rig_cameras(count: int, shrink: int, seed: int) -> list:
    """The synthetic rig: ``count`` cameras on a dome around the hand, InterHand2.6M's image size
    and focal length divided by ``shrink``, principal points jittered (drawn from ``seed``)."""
    focal = 1240.0 / shrink
    return dome_cameras(
        count,
        HAND_CENTRE_MM,
        radius=DOME_RADIUS_MM,
        seed=seed,
        size=(334 // shrink, 512 // shrink),
        focal=(focal, focal),
        jitter_px=12.0 / shrink,
    )


def studio_light(directional: float, rng: np.random.Generator) -> torch.Tensor:
    """2-band SH light (4, 3): near-uniform white, plus a key light from a random upper
    direction of relative strength ``directional`` (which casts shadows)."""
    direction = rng.normal(size=3)
    direction[2] = abs(direction[2]) + 0.5  # from above (world +z)
    # radiance ~1 everywhere; the key light's strength kept below 1, so no radiance is negative
    return lighting.key_light(direction, min(directional, 0.95), (1.0, 0.98, 0.95), bands=2)


def colour_responses(count: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """(count, 3, 4) near-identity affine colour transforms ``rgb' = A rgb + b``."""
    responses = np.zeros((count, 3, 4))
    responses[:, :, :3] = np.eye(3)
    if spread > 0:
        responses[:, :, :3] += rng.normal(scale=spread, size=(count, 3, 3))
        responses[:, :, 3] = rng.normal(scale=spread * 0.1, size=(count, 3))
    return responses


def sequence_poses(
    model: HandModel,
    names: tuple[str, ...],
    frames: int,
    rng: np.random.Generator,
    motion: tuple[float, float] = (0.0, 1.0),
):
    """Per frame: hand pose (45, template-relative), global rotation vector (3) and translation
    (3, m), moving through ``names`` in order (the ``motion`` stretch of that path, as fractions
    of it); and irregular frame indices (InterHand2.6M's videos skip frames)."""
    rest = model.rest_joints
    keys = np.stack([gesture_pose(name, rest) for name in names])
    steps = np.cumsum(rng.integers(1, 4, size=frames))  # gaps of 1 to 3 frames
    s = np.linspace(*motion, frames)[:, None]  # where on the path each frame is, 0..1
    phase = s[:, 0] * (len(names) - 1)
    low = np.floor(phase).astype(int)
    high = np.minimum(low + 1, len(names) - 1)
    t = (phase - low)[:, None]
    t = t * t * (3 - 2 * t)  # ease in and out
    poses = keys[low] * (1 - t) + keys[high] * t
    # Global motion: a random base orientation (palm roughly toward the dome) and a slow drift.
    base = rng.normal(scale=0.6, size=3)
    spin = rng.normal(scale=0.25, size=3)
    drift = rng.normal(scale=0.02, size=3)  # metres over the sequence
    orient = base[None] + s * spin[None]
    transl = (HAND_CENTRE_MM / 1000.0)[None] + s * drift[None]
    return poses, orient, transl, steps


def _params(model: HandModel, pose, orient, transl, betas) -> HandParams:
    return HandParams.create(
        1,
        hand_pose=model_hand_pose(model, pose),
        global_orient=torch.tensor(orient, dtype=torch.float32)[None],
        transl=torch.tensor(transl, dtype=torch.float32)[None],
        betas=torch.tensor(betas, dtype=torch.float32)[None],
    )


def centre_on(model: HandModel, params: HandParams, target_mm: np.ndarray) -> HandParams:
    """Shift ``transl`` so that the hand's vertex centroid sits at ``target_mm``."""
    with torch.no_grad():
        centroid = model(params).vertices[0].mean(0).double().numpy()
    transl = params.transl + torch.tensor((target_mm - centroid) / 1000.0, dtype=params.transl.dtype)[None]
    return HandParams(params.global_orient, params.hand_pose, params.betas, transl)


def perturb(
    model: HandModel,
    params: HandParams,
    noise_mm: float,
    rng: np.random.Generator,
    tolerance: float = 0.05,
    truth: torch.Tensor | None = None,
) -> tuple[HandParams, float]:
    """Gaussian noise on pose and shape, scaled so that the mean per-vertex distance to the
    true hand (``truth`` (V, 3) mm; default: the hand of ``params``) is ``noise_mm`` within
    ``tolerance`` (relative). Returns the noisy parameters and the distance reached. When the
    truth is out of the model's reach and ``params`` are already ``noise_mm`` or more from it,
    they are returned unchanged, with their distance."""
    direction = {
        "global_orient": rng.normal(scale=0.3, size=3),
        "hand_pose": rng.normal(size=45),
        "betas": rng.normal(size=10),
        "transl": rng.normal(scale=0.01, size=3),
    }
    if truth is None:
        with torch.no_grad():
            truth = model(params).vertices[0]

    def at(scale: float) -> tuple[HandParams, float]:
        noisy = HandParams(
            *(
                getattr(params, name) + torch.tensor(scale * direction[name], dtype=torch.float32)[None]
                for name in ("global_orient", "hand_pose", "betas", "transl")
            )
        )
        with torch.no_grad():
            distance = float((model(noisy).vertices[0] - truth).norm(dim=1).mean())
        return noisy, distance

    start = at(0.0)
    if start[1] >= noise_mm * (1 - tolerance / 2):
        return start
    low, high = 0.0, 0.05
    while at(high)[1] < noise_mm:
        high *= 2.0
        if high > 100:
            raise ValueError(f"Cannot reach a mean vertex error of {noise_mm} mm by perturbing pose and shape.")
    for _ in range(60):
        middle = (low + high) / 2
        noisy, distance = at(middle)
        if abs(distance - noise_mm) <= tolerance * noise_mm * 0.5:
            return noisy, distance
        low, high = (middle, high) if distance < noise_mm else (low, middle)
    return at((low + high) / 2)


def interhand_joints(joints21: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(42, 3) world joints and (42,) validity for a right hand (left half invalid, zeros)."""
    joints = np.zeros((NUM_JOINTS, 3))
    joints[:21] = joints21
    valid = np.zeros(NUM_JOINTS)
    valid[:21] = 1.0
    return joints, valid


def draw_occluder(image: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> dict:
    """Draw an opaque grey bar across the hand's region (like a rig part in front of it)."""
    rows, cols = np.nonzero(alpha > 0.5)
    if len(rows) == 0:
        return {}
    centre = np.array([cols.mean(), rows.mean()]) + rng.normal(scale=5.0, size=2)
    angle = rng.uniform(0, np.pi)
    half = max(image.shape[:2])
    direction = np.array([np.cos(angle), np.sin(angle)])
    start, end = centre - half * direction, centre + half * direction
    width = int(rng.integers(6, 14) * image.shape[1] / 334)
    grey = float(rng.uniform(0.15, 0.35))
    cv2.line(image, tuple(int(v) for v in start), tuple(int(v) for v in end), (grey, grey, grey), max(width, 2))
    return {"start": start.tolist(), "end": end.tolist(), "width_px": max(width, 2), "grey": grey}


@dataclass
class Subject:
    betas: np.ndarray
    tone: str
    texture: torch.Tensor = field(repr=False)


def make_subject(model: HandModel, size: int, rng: np.random.Generator) -> Subject:
    """A random adult hand shape and a procedural skin of a random tone."""
    betas = rng.normal(scale=0.8, size=10)
    tone = list(SKIN_TONES)[int(rng.integers(len(SKIN_TONES)))]
    texture = model_skin_texture(model, SkinStyle(tone=tone), betas, seed=int(rng.integers(2**31)), size=size)
    return Subject(betas, tone, texture)


def synthesize(out: str | Path, settings: SynthSettings, progress: bool = True) -> Path:
    """Write a synthetic capture (InterHand2.6M layout + ``ground_truth/``) under ``out``.

    ``ground_truth/vertices.npz`` holds, per ``"capture_frame_hand"``, the true surface's points
    that correspond to the model's vertices (V, 3) mm; ``ground_truth/MANO_NeuralAnnot.json`` the
    model's parameters closest to them (the truth itself when ``settings.mismatch`` is None),
    whose distance to them, the floor, is in ``scene.json``. The realism draws come from their own
    random streams, so an idealised capture is the same with or without them.
    """
    out = Path(out)
    rng = np.random.default_rng(settings.seed)
    rng_real = np.random.default_rng([settings.seed, 1])
    rng_true = np.random.default_rng([settings.seed, 2])
    realism, mismatch = settings.realism, settings.mismatch
    model = HandModel("right")
    true_surface = TrueSurface.of(model, subdivide=mismatch is not None and mismatch.subdivide)
    cameras = rig_cameras(settings.cameras, settings.shrink, settings.seed)
    volume = working_volume(HAND_CENTRE_MM)
    written = [miscalibrate(c, realism.calibration_px / settings.shrink, volume, rng_real) for c in cameras]
    responses = colour_responses(len(cameras), settings.colour_response, rng)
    light = studio_light(settings.directional_light, rng)
    renderer = Renderer(
        cameras, true_surface.surface, RenderSettings(mode="radiance", spp=settings.spp, seed=settings.seed)
    )
    writer = InterHandWriter(out, settings.split, jpeg_quality=realism.jpeg_quality)
    truth_mano, truth_joints, truth_vertices, scene = (
        {},
        {},
        {},
        {
            "settings": asdict(settings),
            "light_sh": light.tolist(),
            "cameras": {c.name: c.to_interhand() for c in cameras},
            "calibration_error_px": {
                c.name: reprojection_rms(c, w, volume) * settings.shrink for c, w in zip(cameras, written)
            },
            "colour_response": {},
            "subjects": {},
            "occluders": {},
            "initial_vertex_error_mm": {},
            "floor_vertex_error_mm": {},
        },
    )
    (out / "ground_truth" / "textures").mkdir(parents=True, exist_ok=True)
    joint_noise = settings.noise_mm if settings.joint_noise_mm is None else settings.joint_noise_mm
    seq_name = "synthetic_" + "_".join(settings.gestures)
    total = settings.subjects * settings.frames
    bar = tqdm(total=total, desc="synth", unit="frame", disable=not progress)
    for capture in range(settings.subjects):
        subject = make_subject(model, settings.texture_size, rng)
        np.save(out / "ground_truth" / "textures" / f"capture{capture}.npy", subject.texture.numpy().astype(np.float16))
        cv2.imwrite(
            str(out / "ground_truth" / "textures" / f"capture{capture}.png"),
            cv2.cvtColor(to_srgb8(subject.texture.numpy()), cv2.COLOR_RGB2BGR),
        )
        scene["subjects"][str(capture)] = {
            "betas": subject.betas.tolist(),
            "tone": subject.tone,
            "texture": f"textures/capture{capture}.npy",
        }
        backgrounds = [settings.background] * len(cameras)
        clutter = None
        if realism.clutter:  # the rig does not move: one backdrop per camera and capture
            skin = subject.texture.reshape(-1, 3).mean(0).numpy()
            clutter = [
                clutter_background(c.height, c.width, skin, rng_real, scale=1.0 / settings.shrink) for c in cameras
            ]
            backgrounds = [(0.0, 0.0, 0.0)] * len(cameras)
        if mismatch is not None:
            proportions = draw_proportions(mismatch, rng_true)
            rest = shaped_rest(model, subject.betas)
            scene["subjects"][str(capture)]["proportions"] = {"length": proportions.length, "girth": proportions.girth}
        poses, orients, transls, indices = sequence_poses(
            model, settings.gestures, settings.frames, rng, settings.motion
        )
        for pose, orient, transl, index in zip(poses, orients, transls, indices):
            params = centre_on(model, _params(model, pose, orient, transl, subject.betas), HAND_CENTRE_MM)
            hand = model
            if mismatch is not None:
                arch = mismatch.palm_arch * float(rng_true.uniform(0.3, 1.0))
                hand = true_model(model, subject.betas, deform_rest(model, rest, proportions, arch))
            with torch.no_grad():
                drawn = true_surface.vertices(hand(params).vertices[0])
                true_vertices = drawn[: model.num_vertices]  # the true surface at the model's vertices
                rendered = renderer.render(drawn, subject.texture, light, backgrounds=backgrounds)
            closest, floor = (params, 0.0) if mismatch is None else fit_to_surface(model, true_vertices, params)
            images, occluders = {}, {}
            for k, (camera, image, alpha) in enumerate(zip(cameras, rendered.images, rendered.alphas)):
                linear = image.numpy().astype(np.float64)
                if clutter is not None:  # the render is the hand over black: put the backdrop behind it
                    linear = linear + (1.0 - alpha.numpy()[..., None]) * clutter[k]
                linear = linear @ responses[k, :, :3].T + responses[k, :, 3]
                linear = np.ascontiguousarray(linear, dtype=np.float32)
                if rng.uniform() < settings.occluded_views:
                    occluders[camera.name] = draw_occluder(linear, alpha.numpy(), rng)
                linear = defocus(linear, realism.defocus_px / settings.shrink)
                linear = sensor_noise(linear, realism.read_noise, realism.shot_noise, rng_real)
                images[camera.name] = to_srgb8(linear)
            noisy, reached = perturb(model, closest, settings.noise_mm, rng, truth=true_vertices)
            true_joints, valid = interhand_joints((model.regressor21 @ true_vertices).numpy())
            noisy_joints = true_joints.copy()
            if joint_noise > 0:  # isotropic 3D Gaussian: mean norm = sigma * 2 sqrt(2 / pi)
                sigma = joint_noise / (2.0 * math.sqrt(2.0 / math.pi))
                noisy_joints[:21] += rng.normal(scale=sigma, size=(21, 3))
            writer.add_frame(
                capture,
                seq_name,
                int(index),
                written,
                images,
                {"right": mano_entry(noisy), "left": None},
                noisy_joints,
                valid,
            )
            key = (str(capture), str(int(index)))
            truth_mano.setdefault(capture, {})[int(index)] = {"right": mano_entry(closest), "left": None}
            truth_vertices["_".join((*key, "right"))] = true_vertices.numpy().astype(np.float32)
            truth_joints.setdefault(key[0], {})[key[1]] = {
                "world_coord": true_joints.tolist(),
                "joint_valid": valid.reshape(-1, 1).tolist(),
                "hand_type": "right",
                "hand_type_valid": 1,
            }
            scene["occluders"].setdefault(key[0], {})[key[1]] = occluders
            scene["initial_vertex_error_mm"].setdefault(key[0], {})[key[1]] = reached
            scene["floor_vertex_error_mm"].setdefault(key[0], {})[key[1]] = floor
            bar.update()
    bar.close()
    scene["colour_response"] = {c.name: responses[k].tolist() for k, c in enumerate(cameras)}
    writer.close()
    write_mano_annotations(out / "ground_truth" / "MANO_NeuralAnnot.json", truth_mano)
    np.savez_compressed(out / "ground_truth" / "vertices.npz", **truth_vertices)
    (out / "ground_truth" / "joint_3d.json").write_text(json.dumps(truth_joints))
    (out / "ground_truth" / "scene.json").write_text(json.dumps(scene, indent=1))
    return out


def read_truths(root: str | Path) -> dict[tuple[int, int, str], Truth]:
    """The truth of every hand of a synthetic capture under ``root``, keyed (capture, frame, hand):
    the true surface's points from ``ground_truth/vertices.npz``, the true joints from
    ``ground_truth/joint_3d.json`` and the floor from ``scene.json``. A capture written before
    ``vertices.npz`` existed (its truth a hand of the model) is read from its MANO parameters.
    ValueError naming the file when a file is malformed or too large."""
    folder = Path(root) / "ground_truth"
    scene = load_json(folder / "scene.json")
    floors = scene.get("floor_vertex_error_mm", {})
    truths = {}
    path = folder / "vertices.npz"
    if not path.is_file():
        mano = load_json(folder / "MANO_NeuralAnnot.json")
        models = {}
        for capture, frames in mano.items():
            for frame, hands in frames.items():
                for hand, entry in hands.items():
                    if entry is not None:
                        model = models.setdefault(hand, HandModel(hand))
                        key = (int(capture), int(frame), hand)
                        truths[key] = as_truth(model, HandParams.from_interhand(entry))
        return truths
    if path.stat().st_size > MAX_TRUTH_BYTES:
        raise ValueError(f"{path} has {path.stat().st_size} bytes, more than the {MAX_TRUTH_BYTES} accepted.")
    joints = load_json(folder / "joint_3d.json")
    try:
        with np.load(path, allow_pickle=False) as stored:
            for name in stored.files:
                capture, frame, hand = name.split("_")
                vertices = np.asarray(stored[name], dtype=np.float32)
                entry = joints[capture][frame]
                world = np.asarray(entry["world_coord"], dtype=np.float32)
                half = world[:21] if hand == "right" else world[21:]
                if vertices.ndim != 2 or vertices.shape[1] != 3 or half.shape != (21, 3):
                    raise ValueError(f"{name}: vertices {vertices.shape}, joints {half.shape}")
                floor = floors.get(capture, {}).get(frame)
                truths[(int(capture), int(frame), hand)] = Truth(
                    torch.from_numpy(vertices), torch.from_numpy(half), None if floor is None else float(floor)
                )
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise ValueError(f"{path} (with joint_3d.json) is not a capture's truth: {type(err).__name__}: {err}") from None
    return truths
