"""InterHand2.6M's on-disk layout: reading it frame by frame, and writing it.

Layout (as the dataset publishes it)::

    annotations/{split}/InterHand2.6M_{split}_data.json             COCO-style images + annotations
    annotations/{split}/InterHand2.6M_{split}_camera.json           {capture: {campos|camrot|focal|princpt: {cam: ...}}}
    annotations/{split}/InterHand2.6M_{split}_joint_3d.json         {capture: {frame: {world_coord, joint_valid,
                                                                                       hand_type, hand_type_valid}}}
    annotations/{split}/InterHand2.6M_{split}_MANO_NeuralAnnot.json {capture: {frame: {right|left:
                                                                                       {pose, shape, trans} | null}}}
    images/{split}/Capture{c}/{seq_name}/cam{id}/image{frame}.jpg

``data.json``'s images carry ``id, file_name, width, height, capture, seq_name, camera,
frame_idx``; its annotations ``id, image_id, bbox, joint_valid, hand_type,
hand_type_valid``. Joints: 42 per frame, 0-20 right hand and 21-41 left, in mm.

The reader loads the annotation JSON once and then yields one :class:`Frame` per
(capture, sequence, frame), reading images only when asked. Problems that concern
one frame or one camera (no calibration, a missing image, NaN joints) do not stop
it: they are recorded in :attr:`InterHandReader.skipped` with their reason.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from handlib.data.names import UnsafePath, check_name, check_relpath, inside
from handlib.geometry.cameras import Camera
from handlib.model.hand import HandParams

SIDES = ("right", "left")
NUM_JOINTS = 42
ANNOTATION_KINDS = ("data", "camera", "joint_3d", "MANO_NeuralAnnot")


def annotation_path(root: Path, split: str, kind: str) -> Path:
    """The annotation file of ``kind`` (one of :data:`ANNOTATION_KINDS`); ``split`` must be a safe name."""
    check_name(split, "split")
    return Path(root) / "annotations" / split / f"InterHand2.6M_{split}_{kind}.json"


def image_relpath(capture: int, seq_name: str, camera: str, frame: int) -> str:
    """``file_name`` of an image, relative to ``images/{split}``; every part a safe name."""
    parts = (f"Capture{int(capture)}", seq_name, f"cam{camera}", f"image{int(frame)}.jpg")
    return str(check_relpath("/".join(parts), f"image of sequence {seq_name!r} camera {camera!r}"))


@dataclass
class Frame:
    """One captured instant: every camera's calibration and image, and the annotations."""

    capture: int
    seq_name: str
    frame: int
    cameras: dict[str, Camera]
    image_paths: dict[str, Path]  # the cameras that have an image file
    mano: dict[str, dict | None]  # side -> {"pose": 48, "shape": 10, "trans": 3 (m)} or None
    joints: np.ndarray | None  # (42, 3) mm, world
    joint_valid: np.ndarray | None  # (42,) bool
    hand_type: str | None = None
    images_dir: Path = field(default=Path("."), repr=False)
    # side -> why its annotation was refused (NaN, wrong length); that side's mano is then None
    invalid: dict[str, str] = field(default_factory=dict)

    def image(self, camera: str) -> np.ndarray:
        """RGB uint8 (H, W, 3) of one camera, read now. ValueError names the file if unreadable."""
        if camera not in self.image_paths:
            raise ValueError(f"Frame {self.key}: no image for camera {camera!r}.")
        path = self.image_paths[camera]
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise ValueError(
                f"Image {path} has {size} bytes, more than the {MAX_IMAGE_BYTES} accepted "
                f"(frame {self.key}, camera {camera})."
            )
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(
                f"Cannot decode image {path} (frame {self.key}, camera {camera}); the file is corrupt or not an image."
            )
        expected = (self.cameras[camera].height, self.cameras[camera].width)
        if image.shape[:2] != expected:
            raise ValueError(
                f"Image {path} is {image.shape[1]}x{image.shape[0]}, but data.json gives camera "
                f"{camera} {expected[1]}x{expected[0]} (frame {self.key})."
            )
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def hand_params(self, side: str) -> HandParams | None:
        """The MANO parameters of one hand as :class:`HandParams` (batch 1), or None."""
        entry = self.mano.get(side)
        return None if entry is None else HandParams.from_interhand(entry)

    @property
    def key(self) -> tuple[int, str, int]:
        return self.capture, self.seq_name, self.frame


#: Largest annotation file read (InterHand2.6M's biggest JSON files are a few hundred MB).
MAX_ANNOTATION_BYTES = 4 << 30
#: Largest image file read (InterHand2.6M's JPEGs are tens of kB).
MAX_IMAGE_BYTES = 64 << 20
#: What a malformed value in a JSON file raises when it is used (all turned into reasons).
BAD_VALUE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


def load_json(path: Path):
    """A JSON annotation file, at most MAX_ANNOTATION_BYTES; errors name the file and say what is expected."""
    if not path.is_file():
        raise FileNotFoundError(
            f"InterHand2.6M annotation file not found: {path}. Expected the layout "
            "annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d,MANO_NeuralAnnot}.json."
        )
    if path.stat().st_size > MAX_ANNOTATION_BYTES:
        raise ValueError(
            f"{path} has {path.stat().st_size} bytes, more than the {MAX_ANNOTATION_BYTES} "
            "accepted for an annotation file."
        )
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{path} is not valid JSON: {type(err).__name__}: {err}") from None


def _finite(values, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return array


class InterHandReader:
    """Frames of one split of an InterHand2.6M-layout directory (the real dataset or a synthetic one)."""

    def __init__(self, root: str | Path, split: str = "test", contents: dict | None = None):
        """Read the split's annotation files, or take them from ``contents`` (the four files' JSON
        values by kind, e.g. from :meth:`subset`): images are still read from ``root``."""
        self.root, self.split = Path(root), split
        if contents is None:
            mano_path = annotation_path(self.root, split, "MANO_NeuralAnnot")
            contents = {kind: load_json(annotation_path(self.root, split, kind)) for kind in ANNOTATION_KINDS[:3]}
            contents["MANO_NeuralAnnot"] = load_json(mano_path) if mano_path.is_file() else {}
        for kind in ANNOTATION_KINDS:
            if not isinstance(contents.get(kind), dict):
                raise ValueError(
                    f"{annotation_path(self.root, split, kind)} must hold a JSON object, "
                    f"found {type(contents.get(kind)).__name__}."
                )
        data = contents["data"]
        self.calibration, self.joints, self.mano = (
            contents["camera"],
            contents["joint_3d"],
            contents["MANO_NeuralAnnot"],
        )
        self.images_dir = self.root / "images" / split
        self.skipped: list[tuple[tuple, str]] = []
        self._cameras: dict[tuple[str, str], Camera] = {}
        images = data.get("images")
        if not isinstance(images, list):
            raise ValueError(f"{annotation_path(self.root, split, 'data')} has no 'images' list.")
        frames: dict[tuple[int, str, int], list[dict]] = defaultdict(list)
        for position, record in enumerate(images):
            try:
                key = (int(record["capture"]), str(record["seq_name"]), int(record["frame_idx"]))
            except (KeyError, TypeError, ValueError, OverflowError) as err:
                raise ValueError(
                    f"{annotation_path(self.root, split, 'data')}: image {position} needs integer "
                    f"'capture' and 'frame_idx' and a 'seq_name' ({type(err).__name__}: {err})."
                ) from None
            frames[key].append(record)
        self._frames = dict(sorted(frames.items()))

    def __len__(self) -> int:
        return len(self._frames)

    def keys(self) -> list[tuple[int, str, int]]:
        return list(self._frames)

    def __contains__(self, key) -> bool:
        return isinstance(key, (tuple, list)) and tuple(key) in self._frames

    def subset(self, keys) -> dict:
        """The annotations of the frames ``keys`` only, as ``contents`` for a new reader: what a
        worker needs to refine them without loading the whole split."""
        keys = [tuple(k) for k in keys]
        captures = {str(k[0]) for k in keys}

        def frames_of(table: dict) -> dict:
            return {
                c: {str(k[2]): table[c][str(k[2])] for k in keys if str(k[0]) == c and str(k[2]) in table[c]}
                for c in captures
                if isinstance(table.get(c), dict)
            }

        return {
            "data": {"images": [r for k in keys for r in self._frames.get(k, [])]},
            "camera": {c: self.calibration[c] for c in captures if c in self.calibration},
            "joint_3d": frames_of(self.joints),
            "MANO_NeuralAnnot": frames_of(self.mano),
        }

    def _camera(self, capture: int, record: dict) -> Camera:
        key = (str(capture), str(record["camera"]))
        if key not in self._cameras:
            calibration = self.calibration.get(str(capture))
            if not isinstance(calibration, dict):
                raise ValueError(f"camera.json has no capture {capture}")
            for name in ("campos", "camrot", "focal", "princpt"):
                value = (calibration.get(name) or {}).get(str(record["camera"]))
                if value is not None:
                    _finite(value, f"camera.json capture {capture} {name} camera {record['camera']}")
            self._cameras[key] = Camera.from_interhand(
                calibration, str(record["camera"]), int(record["width"]), int(record["height"])
            )
        return self._cameras[key]

    def __iter__(self) -> Iterator[Frame]:
        for key in self._frames:
            frame = self.frame(key)
            if frame is not None:
                yield frame

    def _image_path(self, record: dict) -> Path:
        """The image file of ``record``, checked to stay inside ``images/{split}`` (:class:`UnsafePath`)."""
        what = f"data.json image {record.get('id')} file_name"
        relative = check_relpath(record.get("file_name", ""), what)
        inside(self.images_dir, relative, what)
        return self.images_dir / relative

    def frame(self, key: tuple[int, str, int]) -> Frame | None:
        """The frame ``(capture, seq_name, frame)``, or None (with the reason in :attr:`skipped`)."""
        capture, seq_name, index = key
        cameras, paths = {}, {}
        for record in self._frames[key]:
            if not isinstance(record, dict):
                self.skipped.append((key, f"image record skipped: not a JSON object ({type(record).__name__})"))
                continue
            cam = str(record.get("camera"))
            try:
                cameras[cam] = self._camera(capture, record)
            except BAD_VALUE_ERRORS as err:
                self.skipped.append((key + (cam,), f"camera skipped: {err}"))
                continue
            try:
                path = self._image_path(record)
            except UnsafePath as err:
                self.skipped.append((key + (cam,), f"image refused: {err}"))
                continue
            if path.is_file():
                paths[cam] = path
            else:
                self.skipped.append((key + (cam,), f"image missing: {path}"))
        if not cameras:
            self.skipped.append((key, "frame skipped: no calibrated camera"))
            return None
        joints = valid = hand_type = None
        try:
            entry = (self.joints.get(str(capture)) or {}).get(str(index))
            if entry is not None:
                joints = _finite(entry["world_coord"], "world_coord").reshape(NUM_JOINTS, 3)
                valid = np.asarray(entry["joint_valid"], dtype=np.float64).reshape(NUM_JOINTS) > 0
                hand_type = entry.get("hand_type")
                hand_type = hand_type if hand_type is None else str(hand_type)
        except BAD_VALUE_ERRORS as err:
            self.skipped.append((key, f"frame skipped: joint_3d.json capture {capture} frame {index}: {err}"))
            return None
        # A hand whose annotation is unusable is refused alone (the frame and the other hand stay).
        mano, invalid = {}, {}
        try:
            annotations = (self.mano.get(str(capture)) or {}).get(str(index)) or {}
            if not isinstance(annotations, dict):
                raise TypeError(f"expected an object per frame, got {type(annotations).__name__}")
        except BAD_VALUE_ERRORS as err:
            self.skipped.append((key, f"frame skipped: MANO_NeuralAnnot.json capture {capture} frame {index}: {err}"))
            return None
        for side in SIDES:
            try:
                hand = annotations.get(side)
                if hand is not None:
                    hand = {name: _finite(hand[name], name).ravel().tolist() for name in ("pose", "shape", "trans")}
                    for name, size in (("pose", 48), ("shape", 10), ("trans", 3)):
                        if len(hand[name]) != size:
                            raise ValueError(f"{name} has {len(hand[name])} values, expected {size}")
                mano[side] = hand
            except BAD_VALUE_ERRORS as err:
                mano[side] = None
                invalid[side] = f"MANO_NeuralAnnot.json capture {capture} frame {index} {side}: {err}"
        return Frame(capture, seq_name, index, cameras, paths, mano, joints, valid, hand_type, self.images_dir, invalid)


class InterHandWriter:
    """Writes frames in InterHand2.6M's layout; the JSON files are written by :meth:`close`."""

    def __init__(self, root: str | Path, split: str = "test", jpeg_quality: int = 95):
        self.root, self.split, self.jpeg_quality = Path(root), split, int(jpeg_quality)
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.calibration: dict[str, dict] = {}
        self.joints: dict[str, dict] = {}
        self.mano: dict[str, dict] = {}

    def add_frame(
        self,
        capture: int,
        seq_name: str,
        frame: int,
        cameras: list[Camera],
        images: dict[str, np.ndarray] | None = None,
        mano: dict[str, dict | None] | None = None,
        joints: np.ndarray | None = None,
        joint_valid: np.ndarray | None = None,
        hand_type: str = "right",
    ) -> None:
        """Add one frame. ``images``: camera name -> RGB uint8 (H, W, 3); ``mano``: side -> entry or None."""
        valid = np.ones(NUM_JOINTS) if joint_valid is None else np.asarray(joint_valid, dtype=float)
        calibration = self.calibration.setdefault(
            str(capture), {k: {} for k in ("campos", "camrot", "focal", "princpt")}
        )
        for camera in cameras:
            for name, value in camera.to_interhand().items():
                calibration[name][camera.name] = value
            image_id = len(self.images)
            file_name = image_relpath(capture, seq_name, camera.name, frame)
            self.images.append(
                {
                    "id": image_id,
                    "file_name": file_name,
                    "width": int(camera.width),
                    "height": int(camera.height),
                    "capture": int(capture),
                    "subject": int(capture),
                    "seq_name": seq_name,
                    "camera": camera.name,
                    "frame_idx": int(frame),
                }
            )
            self.annotations.append(
                {
                    "id": image_id,
                    "image_id": image_id,
                    "bbox": [0, 0, camera.width, camera.height],
                    "joint_valid": valid.reshape(NUM_JOINTS, 1).tolist(),
                    "hand_type": hand_type,
                    "hand_type_valid": 1,
                }
            )
            if images is not None and camera.name in images:
                self._write_image(self.root / "images" / self.split / file_name, images[camera.name], camera)
        if joints is not None:
            joints = np.asarray(joints, dtype=np.float64).reshape(NUM_JOINTS, 3)
            self.joints.setdefault(str(capture), {})[str(frame)] = {
                "world_coord": joints.tolist(),
                "joint_valid": valid.reshape(NUM_JOINTS, 1).tolist(),
                "hand_type": hand_type,
                "hand_type_valid": 1,
            }
        if mano is not None:
            self.mano.setdefault(str(capture), {})[str(frame)] = {side: mano.get(side) for side in SIDES}

    def _write_image(self, path: Path, image: np.ndarray, camera: Camera) -> None:
        image = np.asarray(image)
        if image.shape != (camera.height, camera.width, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"Image for camera {camera.name} must be uint8 ({camera.height}, {camera.width}, 3), "
                f"got {image.dtype} {image.shape}."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(
            str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
        ):
            raise OSError(f"Could not write {path}.")

    def close(self) -> None:
        directory = annotation_path(self.root, self.split, "data").parent
        directory.mkdir(parents=True, exist_ok=True)
        contents = {
            "data": {"images": self.images, "annotations": self.annotations},
            "camera": self.calibration,
            "joint_3d": self.joints,
            "MANO_NeuralAnnot": self.mano,
        }
        for kind, value in contents.items():
            with annotation_path(self.root, self.split, kind).open("w") as handle:
                json.dump(value, handle)


def write_mano_annotations(path: str | Path, entries: dict) -> None:
    """Write ``{capture: {frame: {"right"|"left": {pose, shape, trans} | None}}}`` as a
    ``MANO_NeuralAnnot``-shaped JSON (what refinement outputs), refusing NaN."""

    def check(value, where):
        if isinstance(value, dict):
            return {k: check(v, f"{where}/{k}") for k, v in value.items()}
        if value is None:
            return None
        array = np.asarray(value, dtype=np.float64)
        if not np.isfinite(array).all():
            raise ValueError(f"NaN or infinite value at {where}; refusing to write {path}.")
        return array.tolist()

    clean = {
        str(c): {
            str(f): {side: check(hands.get(side), f"{c}/{f}/{side}") for side in SIDES} for f, hands in frames.items()
        }
        for c, frames in entries.items()
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with Path(path).open("w") as handle:
        json.dump(clean, handle)


def mano_entry(params: HandParams, index: int = 0) -> dict:
    """One hand of ``params`` as a MANO_NeuralAnnot entry (pose 48, shape 10, trans 3 m)."""
    return params.to_interhand()[index]
