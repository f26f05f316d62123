"""What a real camera adds to a rendered image: defocus, sensor noise, JPEG, a calibration that is
slightly off, and a background that is not one flat colour.

Pure functions on linear-RGB float images (H, W, 3) and on cameras, each driven by one setting
of :class:`Realism`; :func:`handlib.data.synth.synthesize` applies them in the order a camera
does (light through a slightly defocused lens onto a noisy sensor, then JPEG) and writes the
miscalibrated cameras, keeping the true ones in ``ground_truth/scene.json``.

Lengths in pixels are given at InterHand2.6M's full resolution (334x512) and scaled with the
image. The defaults are stated guesses, not measurements of InterHand2.6M's rig (its noise, lens
and calibration residuals are not published): a calibration that reprojects within 0.3 px RMS
is what a good dome calibration reports; JPEG quality 90 is a common setting. A user with the
real images can read their JPEG quality with :func:`jpeg_quality`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from handlib.geometry.cameras import Camera


@dataclass(frozen=True)
class Realism:
    """Image and calibration degradations; 0 turns each off.

    ``read_noise``: standard deviation of the sensor's signal-independent noise (linear, 1 = white).
    ``shot_noise``: variance of the signal-dependent part per unit of signal (photon noise).
    ``defocus_px``: standard deviation of a Gaussian blur (full-resolution pixels).
    ``jpeg_quality``: quality of the written JPEGs (IJG scale, 1-100).
    ``calibration_px``: RMS reprojection error of the written cameras against the true ones over
    the hand's working volume (full-resolution pixels).
    ``clutter``: a background with the rig's bars, objects and a skin-coloured region (the other
    hand, an arm) instead of one flat colour.
    """

    read_noise: float = 0.004
    shot_noise: float = 0.0012
    defocus_px: float = 0.7
    jpeg_quality: int = 90
    calibration_px: float = 0.3
    clutter: bool = True

    def __post_init__(self) -> None:
        if min(self.read_noise, self.shot_noise, self.defocus_px, self.calibration_px) < 0:
            raise ValueError("Realism's noise, defocus and calibration error must be >= 0.")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality is on the IJG scale 1-100, got {self.jpeg_quality}.")
        if self.defocus_px > 10 or self.calibration_px > 10:
            raise ValueError("defocus_px and calibration_px above 10 px are not a calibrated rig.")


#: The ideal capture: no noise, blur or calibration error, flat background, near-lossless JPEG.
IDEAL = Realism(0.0, 0.0, 0.0, 95, 0.0, False)


def defocus(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma_px`` (the image's own pixels)."""
    if sigma_px <= 0:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma_px, borderType=cv2.BORDER_REFLECT)


def sensor_noise(image: np.ndarray, read: float, shot: float, rng: np.random.Generator) -> np.ndarray:
    """Heteroscedastic Gaussian noise: variance ``read**2 + shot * signal`` per pixel and channel."""
    if read <= 0 and shot <= 0:
        return image
    sigma = np.sqrt(read**2 + shot * np.clip(image, 0.0, None))
    return (image + sigma * rng.standard_normal(image.shape)).astype(image.dtype)


def clutter_background(
    height: int, width: int, skin: np.ndarray, rng: np.random.Generator, scale: float = 1.0
) -> np.ndarray:
    """(H, W, 3) linear RGB: a dark studio backdrop with a vertical gradient, rig bars, a few objects
    of muted colours and, in half the views, a skin-coloured region of the ``skin`` (3,) colour
    near the border (another hand or an arm). ``scale``: the image's size over full resolution."""
    tint = rng.uniform(0.85, 1.15, size=3)  # a near-neutral dark backdrop, as a capture studio's
    top, bottom = rng.uniform(0.01, 0.05) * tint, rng.uniform(0.01, 0.05) * tint
    rows = np.linspace(0.0, 1.0, height)[:, None, None]
    image = np.ascontiguousarray(np.broadcast_to(top * (1 - rows) + bottom * rows, (height, width, 3)), np.float32)
    for _ in range(int(rng.integers(2, 6))):  # objects: boxes and discs of muted colours
        colour = tuple(float(c) for c in rng.uniform(0.02, 0.25) * rng.uniform(0.5, 1.0, size=3))
        centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        size = (int(rng.uniform(15, 80) * scale) + 1, int(rng.uniform(15, 80) * scale) + 1)
        if rng.uniform() < 0.5:
            cv2.rectangle(image, centre, (centre[0] + size[0], centre[1] + size[1]), colour, -1)
        else:
            cv2.ellipse(image, centre, size, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    for _ in range(int(rng.integers(1, 4))):  # the rig's bars, metallic grey, across the view
        grey = float(rng.uniform(0.05, 0.3))
        start = (int(rng.uniform(-0.2, 1.2) * width), -10)
        end = (int(rng.uniform(-0.2, 1.2) * width), height + 10)
        if rng.uniform() < 0.5:
            start, end = (-10, int(rng.uniform(0, height))), (width + 10, int(rng.uniform(0, height)))
        cv2.line(image, start, end, (grey, grey, grey * 1.05), max(int(rng.uniform(4, 12) * scale), 1))
    if rng.uniform() < 0.5:  # another hand's region entering from a border
        side = int(rng.integers(4))
        along = rng.uniform(0.2, 0.8)
        centre = [
            (int(along * width), 0),
            (int(along * width), height),
            (0, int(along * height)),
            (width, int(along * height)),
        ][side]
        axes = (int(rng.uniform(40, 90) * scale) + 1, int(rng.uniform(25, 50) * scale) + 1)
        shade = np.asarray(skin, dtype=np.float64) * rng.uniform(0.6, 1.0)
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, tuple(float(c) for c in shade), -1)
    return defocus(image, 1.5 * scale)  # the backdrop is out of the focal plane


def reprojection_rms(true: Camera, written: Camera, points: np.ndarray) -> float:
    """RMS distance (px) between the projections of ``points`` (N, 3) mm by the two cameras."""
    a, _ = true.project(points)
    b, _ = written.project(points)
    return float(np.sqrt(((a - b) ** 2).sum(-1).mean()))


def miscalibrate(camera: Camera, rms_px: float, points: np.ndarray, rng: np.random.Generator) -> Camera:
    """``camera`` with a small random error in rotation, principal point and focal length, scaled so
    that it reprojects ``points`` (N, 3) mm ``rms_px`` pixels (RMS) away from where it should."""
    if rms_px <= 0:
        return camera
    focal = float(camera.focal.mean())
    direction = {
        "rotation": rng.normal(size=3) / focal,  # about one pixel per unit at the image centre
        "princpt": rng.normal(size=2),
        "focal": rng.normal() / 200.0,  # a 0.5% change moves a point 100 px off-centre by 0.5 px
    }

    def at(scale: float) -> Camera:
        turn = Rotation.from_rotvec(scale * direction["rotation"]).as_matrix()
        return replace(
            camera,
            camrot=turn @ camera.camrot,
            princpt=camera.princpt + scale * direction["princpt"],
            focal=camera.focal * (1.0 + scale * direction["focal"]),
        )

    unit = reprojection_rms(camera, at(1.0), points)
    scale = rms_px / unit
    for _ in range(3):  # nearly linear in the scale: a few secant corrections
        scale *= rms_px / reprojection_rms(camera, at(scale), points)
    return at(scale)


def working_volume(centre_mm: np.ndarray, radius_mm: float = 100.0, count: int = 500, seed: int = 0) -> np.ndarray:
    """(count, 3) points spread through a ball around ``centre_mm``: where the hand moves."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return centre_mm + directions * radius_mm * rng.uniform(size=(count, 1)) ** (1 / 3)


#: IJG's baseline luminance quantisation table (ITU-T T.81, Annex K, Table K.1), rows of the 8x8
#: block in natural order, as Pillow reports a file's tables.
_IJG_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


def jpeg_quality(path: str | Path) -> int:
    """The IJG quality (1-100) whose luminance table best matches a JPEG file's, so that synthetic
    captures can be written as a real dataset's images were. ValueError naming the file when it is
    not a baseline JPEG with a luminance table."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            tables = getattr(image, "quantization", None)
    except OSError as err:
        raise ValueError(f"{path}: not a readable image ({err}).") from None
    if not tables or 0 not in tables:
        raise ValueError(f"{path}: no JPEG luminance quantisation table; is it a JPEG?")
    table = np.asarray(tables[0], dtype=np.float64)
    base = np.asarray(_IJG_LUMINANCE, dtype=np.float64)

    def ijg(quality: int) -> np.ndarray:
        scale = 5000 / quality if quality < 50 else 200 - 2 * quality
        return np.clip(np.floor((base * scale + 50) / 100), 1, 255)

    errors = [np.abs(ijg(q) - table).sum() for q in range(1, 101)]
    return int(np.argmin(errors)) + 1
