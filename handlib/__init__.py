"""handlib: refine 3D hand annotations of multi-view datasets by differentiable rendering.

Importing handlib selects the Mitsuba 3 variant (see :mod:`handlib.backend`):
``HANDLIB_VARIANT`` if set, else ``cuda_ad_rgb`` when a GPU is usable, else
``llvm_ad_rgb`` with a working libLLVM found automatically.
"""
from handlib.backend import select_variant, set_variant

__version__ = "0.1.0"

VARIANT = select_variant()

__all__ = ["VARIANT", "__version__", "set_variant"]
