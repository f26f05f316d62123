"""handlib: refine 3D hand annotations of multi-view datasets by differentiable rendering.

Importing handlib (or a pure-torch module such as :mod:`handlib.losses`) selects no render
back-end. The Mitsuba 3 variant is chosen when something first renders (see
:mod:`handlib.backend`): ``HANDLIB_VARIANT`` if set, else ``cuda_ad_rgb`` when a GPU is usable,
else ``llvm_ad_rgb`` with a working libLLVM found automatically. ``handlib.VARIANT`` chooses
it on first access and names it.
"""

from handlib.backend import ensure_variant, set_variant

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "VARIANT":
        return ensure_variant()
    raise AttributeError(f"module 'handlib' has no attribute {name!r}")


__all__ = ["VARIANT", "__version__", "ensure_variant", "set_variant"]
