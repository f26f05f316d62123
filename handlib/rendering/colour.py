"""Colour: the sRGB transfer curve (IEC 61966-2-1) both ways, in torch and to uint8, and the
per-camera linear colour transforms ``rgb' = A rgb + b`` both methods fit.

Images are stored sRGB-encoded; DMVR renders linear radiance and encodes it before comparing,
SMVR's colour map lives in the images' encoded space.
"""

from __future__ import annotations

import numpy as np
import torch


def srgb_encode(linear: torch.Tensor) -> torch.Tensor:
    """Linear RGB -> sRGB-encoded values in [0, 1] (IEC 61966-2-1), differentiable."""
    x = linear.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(1e-8) ** (1 / 2.4) - 0.055)


def srgb_decode(encoded: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0, 1] -> linear RGB."""
    x = encoded.clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def apply_colour_transform(image: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    """``rgb' = A rgb + b`` for an (H, W, 3) image and a (3, 4) transform [A | b]."""
    return image @ transform[:, :3].T + transform[:, 3]


def undo_colour_transform(image: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`apply_colour_transform`: ``rgb = A^-1 (rgb' - b)``, in float64."""
    transform = transform.detach().double()
    return (image.double() - transform[:, 3]) @ torch.linalg.inv(transform[:, :3]).T


def identity_colour_transforms(cameras: int, trainable: bool) -> torch.Tensor:
    """(cameras, 3, 4) transforms [I | 0], a leaf that requires grad when ``trainable``."""
    return torch.cat([torch.eye(3), torch.zeros(3, 1)], 1).repeat(cameras, 1, 1).requires_grad_(trainable)


def to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear RGB (..., 3) -> sRGB-encoded uint8 (IEC 61966-2-1 transfer curve), clipped to [0, 1]."""
    linear = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return (srgb * 255 + 0.5).astype(np.uint8)
