"""A camera's background colour inside the ray tracer, instead of a second (coverage) render.

Compositing ``image + (1 - alpha) * background`` needs alpha with its silhouette gradients: a
second projective render per view, forward and backward. Here the background is what a camera
ray sees when it leaves the scene: Mitsuba's projective integrator (``direct_projective``)
subclassed so that a primary ray that misses every shape adds the view's background colour.
Its silhouette term compares the radiance on the two sides of an edge by calling the same
``sample`` with the ray that passes the edge, so edges against the background get the gradient
of the difference to the background colour, as the composite's alpha gave it. The colour is an
opaque Dr.Jit variable, so every view reuses the same compiled kernels.

The samples that hit a shape are reported as valid, so an RGBA film's alpha channel is the
coverage of the same samples (without gradients: a differentiable coverage needs the second
render, see :mod:`handlib.rendering.renderer`).

Only colours fit here; an image background (different behind every pixel) keeps the
composite (see :mod:`handlib.rendering.renderer`).
"""

from __future__ import annotations

import drjit as dr
import mitsuba as mi

#: The integrator's name in Mitsuba scene dictionaries.
NAME = "handlib_backdrop"
_registered: set[str] = set()


def register() -> str:
    """Register the integrator for the current Mitsuba variant (once) and return its name."""
    variant = mi.variant()
    if variant in _registered:
        return NAME
    from mitsuba.ad.integrators.direct_projective import DirectProjectiveIntegrator

    class BackdropIntegrator(DirectProjectiveIntegrator):
        """``direct_projective`` whose camera rays that miss every shape see ``background``, and
        whose samples are valid where they hit a shape."""

        def __init__(self, props):
            super().__init__(props)
            self.background = None

        def set_background(self, colour) -> None:
            """The colour (3,) the next launches show where no shape is; None for black."""
            self.background = None if colour is None else dr.opaque(mi.Color3f, [float(c) for c in colour])

        def sample(self, mode, scene, sampler, ray, depth, δL, state_in, active, project=False, si_shade=None, **kw):
            result = super().sample(mode, scene, sampler, ray, depth, δL, state_in, active, project, si_shade, **kw)
            if si_shade is not None:
                return result  # a shading point given: not a ray that can leave the scene
            L, _, aovs, seeds = result
            with dr.suspend_grad():
                hit = scene.ray_test(ray, active)
            if self.background is None:
                return L, hit, aovs, seeds
            # Callers trace this with gradients suspended; the sum must keep L's AD graph.
            with dr.resume_grad(when=mode != dr.ADMode.Primal):
                return L + dr.select(active & ~hit, self.background, 0.0), hit, aovs, seeds

    mi.register_integrator(NAME, lambda props: BackdropIntegrator(props))
    _registered.add(variant)
    return NAME
