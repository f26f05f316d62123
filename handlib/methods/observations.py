"""What both methods do to the photos before optimising: check and scale them, and estimate each
camera's background colour away from the hand."""

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
