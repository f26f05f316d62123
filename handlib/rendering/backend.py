"""Choose the Mitsuba 3 variant and a working libLLVM for Dr.Jit's CPU backend.

Dr.Jit's LLVM backend loads ``libLLVM`` at run time. With libLLVM 15 it crashes
(``LLVM ERROR: Cannot select ... fmaximum``); libLLVM 19 works (Debian/Ubuntu
package ``libllvm19``). Dr.Jit only looks for an unversioned ``libLLVM.so``,
which Debian does not ship, so unless ``DRJIT_LIBLLVM_PATH`` is already set we
point it at the best library we find before Mitsuba is imported.

Nothing happens at import: the variant is chosen when something first renders
(:func:`ensure_variant`). Variant choice, in order: ``HANDLIB_VARIANT`` (environment), else
``cuda_ad_rgb`` when a CUDA device is usable, else ``llvm_ad_rgb``.
``set_variant`` forces one later.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from typing import Sequence

SUPPORTED_VARIANTS = ("cuda_ad_rgb", "llvm_ad_rgb")
#: libLLVM major versions, best first. 15 and older are known to crash Dr.Jit 1.5.
PREFERRED_LLVM_MAJORS = (19, 20, 21, 18, 17, 16)
LIBLLVM_SEARCH_DIRS = (
    os.path.join(sys.prefix, "lib"),  # conda: conda-forge's libllvm19
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/usr/lib/llvm-*/lib",
    "/opt/homebrew/opt/llvm/lib",
)
INSTALL_HINT = (
    "Install libLLVM 19: `sudo apt-get install libllvm19` on Debian/Ubuntu "
    "(or `conda install -c conda-forge libllvm19`), or set DRJIT_LIBLLVM_PATH to a "
    "libLLVM of version 16 or newer. libLLVM 15 and older crash Dr.Jit."
)


class BackendError(ImportError):
    """No usable Mitsuba variant: the message says what to install or set."""


def llvm_major(path: str | os.PathLike) -> int | None:
    """Major version encoded in a libLLVM file name (``libLLVM-19.so``,
    ``libLLVM.so.19.1``, ``/usr/lib/llvm-19/lib/libLLVM.so.1``), or None."""
    path = str(path)
    name = os.path.basename(path)
    for pattern in (r"libLLVM-(\d+)", r"libLLVM\.so\.(\d+)", r"libLLVM\.(\d+)\.dylib"):
        match = re.search(pattern, name)
        if match and int(match.group(1)) > 1:
            return int(match.group(1))
    match = re.search(r"llvm-(\d+)", path)
    return int(match.group(1)) if match else None


def find_libllvm(search_dirs: Sequence[str] = LIBLLVM_SEARCH_DIRS) -> str | None:
    """Best libLLVM shared library under ``search_dirs`` (globs allowed), or None.

    Only majors in ``PREFERRED_LLVM_MAJORS`` count; among them the earliest in
    that tuple wins, so libLLVM 19 beats 20 beats 18, and 15 is never chosen.
    """
    found: dict[int, str] = {}
    for pattern in search_dirs:
        for directory in sorted(glob.glob(pattern)):
            for candidate in sorted(glob.glob(os.path.join(directory, "libLLVM*"))):
                major = llvm_major(candidate)
                if major in PREFERRED_LLVM_MAJORS and os.path.isfile(candidate):
                    found.setdefault(major, candidate)
    for major in PREFERRED_LLVM_MAJORS:
        if major in found:
            return found[major]
    return None


def configure_libllvm(search_dirs: Sequence[str] = LIBLLVM_SEARCH_DIRS) -> str | None:
    """Set ``DRJIT_LIBLLVM_PATH`` to a working libLLVM unless the user set it.

    Returns the path in use, or None when none was found (then only the CUDA
    variant can work).
    """
    current = os.environ.get("DRJIT_LIBLLVM_PATH")
    if current:
        return current
    path = find_libllvm(search_dirs)
    if path is not None:
        os.environ["DRJIT_LIBLLVM_PATH"] = path
    return path


def _cuda_usable() -> bool:
    import drjit as dr

    try:
        return bool(dr.has_backend(dr.JitBackend.CUDA))
    except Exception:  # a missing driver raises inside Dr.Jit on some versions
        return False


def set_variant(variant: str) -> str:
    """Force a Mitsuba variant (``cuda_ad_rgb`` or ``llvm_ad_rgb``) and return it."""
    if variant not in SUPPORTED_VARIANTS:
        raise ValueError(
            f"Unsupported Mitsuba variant {variant!r}; handlib renders with one of {', '.join(SUPPORTED_VARIANTS)}."
        )
    import mitsuba as mi

    if variant == "llvm_ad_rgb" and not os.environ.get("DRJIT_LIBLLVM_PATH"):
        raise BackendError(f"The CPU variant llvm_ad_rgb needs libLLVM and none was found. {INSTALL_HINT}")
    if variant == "cuda_ad_rgb" and not _cuda_usable():
        raise BackendError(
            "The GPU variant cuda_ad_rgb was requested but no CUDA device is usable "
            "(no NVIDIA driver found). Use llvm_ad_rgb, or unset HANDLIB_VARIANT."
        )
    mi.set_variant(variant)
    global _chosen
    _chosen = variant
    return variant


_chosen: str | None = None


def ensure_variant() -> str:
    """The variant in use, chosen now (:func:`select_variant`) if nothing chose one yet. Everything
    that builds a Mitsuba object calls this first, so importing handlib has no side effect."""
    return _chosen or select_variant()


def select_variant() -> str:
    """Pick and set the variant as the module docstring says; return its name."""
    libllvm = configure_libllvm()
    forced = os.environ.get("HANDLIB_VARIANT")
    if forced:
        return set_variant(forced)
    if _cuda_usable():
        return set_variant("cuda_ad_rgb")
    if libllvm is None:
        raise BackendError(f"No CUDA device and no libLLVM for Mitsuba's CPU backend. {INSTALL_HINT}")
    return set_variant("llvm_ad_rgb")


def describe() -> dict[str, str]:
    """What handlib renders with: variant, libLLVM path, versions (for reports)."""
    import drjit as dr
    import mitsuba as mi

    return {
        "variant": str(mi.variant()),
        "libllvm": os.environ.get("DRJIT_LIBLLVM_PATH", ""),
        "mitsuba": mi.__version__,
        "drjit": dr.__version__,
    }


__all__ = [
    "BackendError",
    "configure_libllvm",
    "describe",
    "ensure_variant",
    "find_libllvm",
    "llvm_major",
    "select_variant",
    "set_variant",
]
