"""handlib: refine 3D hand annotations of multi-view datasets by differentiable rendering.

The package follows the data flow, each layer importing only the ones below it::

    cli            the command line
    pipeline       one unit of refinement; a whole split on Dask (resumable ledger)
    methods  data  SMVR, DMVR and their parts | InterHand2.6M layout, synthetic captures
    rendering      Mitsuba variant, renderer (ray trace / raster), colour, textures, lighting
    geometry       cameras, the closed hand surface
    model          MANO-format model files, the hand layer, skeleton, anatomy, gestures

``experiments`` (notebook helpers) stands apart: the library never imports it.

``import handlib`` has no side effect. The names below are loaded when first used (so the
pure-torch parts work without a render back-end), and the Mitsuba variant is chosen when
something first renders (see :mod:`handlib.rendering.backend`); ``handlib.VARIANT`` chooses it
on first access and names it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

__version__ = "0.6.8"

#: The public API: name -> the module that defines it (loaded on first access).
_PUBLIC = {
    "HandModel": "handlib.model.hand",
    "HandParams": "handlib.model.hand",
    "Camera": "handlib.geometry.cameras",
    "HandSurface": "handlib.geometry.surface",
    "Renderer": "handlib.rendering.renderer",
    "RenderSettings": "handlib.rendering.renderer",
    "ensure_variant": "handlib.rendering.backend",
    "set_variant": "handlib.rendering.backend",
    "InterHandReader": "handlib.data.interhand",
    "InterHandWriter": "handlib.data.interhand",
    "SynthSettings": "handlib.data.synth",
    "synthesize": "handlib.data.synth",
    "SMVRSettings": "handlib.methods.smvr",
    "refine_frame": "handlib.methods.smvr",
    "DMVRSettings": "handlib.methods.dmvr",
    "refine_sequence": "handlib.methods.dmvr",
    "Options": "handlib.pipeline.refine",
    "Unit": "handlib.pipeline.refine",
    "refine_unit": "handlib.pipeline.refine",
    "Cluster": "handlib.pipeline.dataset",
    "Selection": "handlib.pipeline.dataset",
    "run_dataset": "handlib.pipeline.dataset",
}

#: Module paths of release 0.1 that moved into the subpackages: still importable for one release,
#: with a DeprecationWarning (the README lists them).
MOVED = {
    "handlib.hand": "handlib.model.hand",
    "handlib.mano_io": "handlib.model.mano_io",
    "handlib.skeleton": "handlib.model.skeleton",
    "handlib.anatomy": "handlib.model.anatomy",
    "handlib.gestures": "handlib.model.gestures",
    "handlib.assets": "handlib.model.assets",
    "handlib.cameras": "handlib.geometry.cameras",
    "handlib.surface": "handlib.geometry.surface",
    "handlib.backend": "handlib.rendering.backend",
    "handlib.render": "handlib.rendering.renderer",
    "handlib.raster": "handlib.rendering.raster",
    "handlib.uvtexture": "handlib.rendering.uvtexture",
    "handlib.texture": "handlib.rendering.texture",
    "handlib.lighting": "handlib.rendering.lighting",
    "handlib.backproject": "handlib.rendering.backproject",
    "handlib.interhand": "handlib.data.interhand",
    "handlib.synth": "handlib.data.synth",
    "handlib.losses": "handlib.methods.losses",
    "handlib.schedule": "handlib.methods.schedule",
    "handlib.lod": "handlib.methods.lod",
    "handlib.temporal": "handlib.methods.temporal",
    "handlib.metrics": "handlib.methods.metrics",
    "handlib.smvr": "handlib.methods.smvr",
    "handlib.dmvr": "handlib.methods.dmvr",
    "handlib.refine": "handlib.pipeline.refine",
    "handlib.dataset": "handlib.pipeline.dataset",
    "handlib.study": "handlib.experiments.study",
    "handlib.report": "handlib.experiments.report",
    "handlib.preview": "handlib.experiments.preview",
    "handlib.book": "handlib.experiments.book",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old path as a thin module that forwards every attribute to the new one."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        warnings.warn(
            f"{spec.name} moved to {MOVED[spec.name]}; the old path goes in the next release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return types.ModuleType(spec.name)

    def exec_module(self, module):
        target = importlib.import_module(MOVED[module.__name__])
        module.__getattr__ = lambda name: getattr(target, name)
        module.__dir__ = lambda: dir(target)
        module.__doc__ = f"Moved to {target.__name__}."


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())


def __getattr__(name: str):
    if name == "VARIANT":
        return importlib.import_module("handlib.rendering.backend").ensure_variant()
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    old = f"handlib.{name}"
    if old in MOVED:  # handlib.render etc. as attributes, as after `import handlib.render` in 0.1
        return importlib.import_module(old)
    raise AttributeError(f"module 'handlib' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_PUBLIC, "VARIANT"])


__all__ = ["VARIANT", "__version__", *_PUBLIC]
