"""What both methods do to the photos before optimising: check and scale them, and estimate what
each camera sees behind the hand (a colour, or a plate: the view without the hand)."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

from handlib.geometry.cameras import Camera


def observed_images(images: Sequence[np.ndarray], cameras: Sequence[Camera], frame: int = 0) -> list[torch.Tensor]:
    """One photo per camera (uint8, or float in [0, 1], (H, W, 3)) as float32 tensors in [0, 1];
    ValueError naming the frame and camera when the count or a shape is wrong."""
    if len(images) != len(cameras):
        raise ValueError(f"Frame {frame} has {len(images)} images for {len(cameras)} cameras.")
    observed = []
    for camera, image in zip(cameras, images):
        array = np.asarray(image)
        scaled = array.astype(np.float32) / (255.0 if array.dtype == np.uint8 else 1.0)
        if scaled.shape != (camera.height, camera.width, 3):
            raise ValueError(
                f"Frame {frame}, camera {camera.name}: image shape {scaled.shape}, expected "
                f"({camera.height}, {camera.width}, 3)."
            )
        observed.append(torch.as_tensor(scaled))
    return observed


def background_colours(images: Sequence[torch.Tensor], alphas: Sequence[torch.Tensor], margin: int = 15):
    """Per camera, the median colour (3,) of the pixels away from the hand (alpha dilated by ``margin``)."""
    colours = []
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    for image, alpha in zip(images, alphas):
        near = cv2.dilate((alpha.numpy() > 0).astype(np.uint8), kernel) > 0
        pixels = image.numpy()[~near]
        colours.append(torch.tensor(np.median(pixels, axis=0) if len(pixels) else np.zeros(3), dtype=torch.float32))
    return colours


#: The plate's hole around the estimated hand, as a fraction of the image's larger side (4 px at
#: the quick profile's 256, 8 at InterHand2.6M's 512). Chosen on three development videos of the
#: realistic benchmark (benchmarks/dmvr_albedo.py --plate-margin): DMVR's eps_v after 100 iterations
#: from 10 mm, holes of 15 / 4 px: 9.88 / 4.69, 4.32 / 4.46, 3.77 / 4.21 mm. A wide hole is
#: inpainted from farther away, and where the guess misses the backdrop (a bright bar behind the
#: fingers) the hand is drawn onto it; the median colour left 9.99 / 6.77 / 3.84 mm.
PLATE_MARGIN = 1 / 64


def background_plates(
    frames: Sequence[Sequence[torch.Tensor]], alphas: Sequence[Sequence[torch.Tensor]], margin: float = PLATE_MARGIN
) -> list[torch.Tensor]:
    """Per camera, what it sees without the hand, (H, W, 3) in the images' encoding:
    ``frames[t][c]`` the photo of frame t in camera c, ``alphas[t][c]`` the estimated hand's
    coverage there. A pixel away from the hand (alpha dilated by ``margin`` times the image's
    larger side, at least 1 px) in some frames takes its median over those frames
    (the rig does not move); a pixel near the hand in every frame is inpainted from the plate
    around it (OpenCV's Navier-Stokes method, per channel; its Telea method returns values far
    outside the known ones on float images in OpenCV 5.1). ValueError when the counts differ."""
    if len(frames) == 0 or len(frames) != len(alphas) or any(len(a) != len(f) for f, a in zip(frames, alphas)):
        raise ValueError(
            f"background_plates needs one coverage per photo; got {[len(f) for f in frames]} photos and "
            f"{[len(a) for a in alphas]} coverages per frame."
        )
    plates = []
    for c in range(len(frames[0])):
        stack = np.stack([frame[c].numpy() for frame in frames]).astype(np.float32)
        width = max(1, round(margin * max(stack.shape[1:3])))
        kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
        near = np.stack([cv2.dilate((a[c].numpy() > 0).astype(np.uint8), kernel) > 0 for a in alphas])
        hole = near.all(0)
        if hole.all():  # the hand near every pixel in every frame: no backdrop seen
            plate = np.median(stack, axis=0)
        else:
            plate = np.nanmedian(np.where((near & ~hole)[..., None], np.nan, stack), axis=0)
            if hole.any():  # its pixels hold the hand's median so far: inpainted
                mask = hole.astype(np.uint8)
                plate = np.stack(
                    [cv2.inpaint(np.ascontiguousarray(plate[..., k]), mask, 5, cv2.INPAINT_NS) for k in range(3)], -1
                )
        plates.append(torch.as_tensor(np.ascontiguousarray(plate), dtype=torch.float32))
    return plates
