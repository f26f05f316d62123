"""Textures as levels of detail (DMVR section 3.4.1): each texel is the sum of ``L`` images of
increasing size, each upsampled to the texture's size. Optimising the coarse levels first
extracts rough colour before detail."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def level_sizes(size: int, levels: int) -> list[int]:
    """Sizes of the levels, coarsest first: size / 2^(levels-1), ..., size."""
    if levels < 1 or size % (1 << (levels - 1)):
        raise ValueError(
            f"A {size}-texel texture cannot hold {levels} levels that halve each time; "
            f"use a size divisible by {1 << max(levels - 1, 0)}."
        )
    return [size >> (levels - 1 - k) for k in range(levels)]


def upsample(level: torch.Tensor, size: int) -> torch.Tensor:
    """(s, s, 3) -> (size, size, 3), bilinear (texel centres aligned)."""
    if level.shape[0] == size:
        return level
    return F.interpolate(level.permute(2, 0, 1)[None], size=(size, size), mode="bilinear", align_corners=False)[
        0
    ].permute(1, 2, 0)


def compose(levels: list[torch.Tensor]) -> torch.Tensor:
    """The texture: the sum of all levels upsampled to the finest one's size."""
    size = levels[-1].shape[0]
    return sum(upsample(level, size) for level in levels)


def decompose(texture: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Levels (coarsest first) whose :func:`compose` is ``texture`` (S, S, 3): the coarsest is the
    area-averaged texture, each finer one the residual the coarser ones leave."""
    size = texture.shape[0]
    out, approximation = [], torch.zeros_like(texture)
    for s in level_sizes(size, levels):
        target = F.adaptive_avg_pool2d((texture - approximation).permute(2, 0, 1)[None], s)[0].permute(1, 2, 0)
        out.append(target)
        approximation = approximation + upsample(target, size)
    return out
