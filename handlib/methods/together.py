"""What refining two hands together adds to SMVR and DMVR (beyond both papers, which take one hand).

Both hands are rendered in one scene (:meth:`handlib.geometry.surface.HandSurface.together`), so
each camera sees them hide each other; each hand's colour map or albedo is back-projected with the
other hand in the way of the rays (:func:`occluders`); and the interpenetration term E3
(:func:`penetration_energy`) penalises one hand passing through the other, not their touching.
"""

from __future__ import annotations

from typing import Sequence

import mitsuba as mi
import torch

from handlib.geometry.surface import HandSurface
from handlib.rendering.backproject import surface_scene
from handlib.rendering.inside import hand_depths


def penetration_energy(surfaces: Sequence[HandSurface], vertices: Sequence[torch.Tensor]) -> tuple[torch.Tensor, float]:
    """E3 of two hands (their model vertices (V_k, 3) mm): the mean squared penetration depth (mm^2)
    of each closed hand's vertices into the other, and the deepest penetration (mm). Which vertices
    are inside comes from ray crossings (:func:`handlib.rendering.inside.hand_depths`)."""
    depths = hand_depths(surfaces, [s.close(v) for s, v in zip(surfaces, vertices)])
    return (depths**2).mean(), float(depths.detach().max())


def occluders(surface: HandSurface, vertices: Sequence[torch.Tensor]) -> mi.Scene | None:
    """What a back-projection's visibility rays are cast at when several hands share a frame: the
    scene of all of them (``surface`` is their :meth:`~HandSurface.together`, ``vertices`` each
    hand's model vertices); None for one hand (its own scene is the default)."""
    if len(vertices) < 2:
        return None
    joined = torch.cat([v.detach() for v in vertices]).double()
    return surface_scene(surface, surface.close(joined))
