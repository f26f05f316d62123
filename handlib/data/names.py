"""Names from a dataset that become parts of paths, checked before they touch the disk.

A sequence name, capture, camera, frame or ``file_name`` read from a dataset's JSON is
untrusted: ``../../x`` or ``/etc`` must not lead a reader outside the images folder or a
writer outside ``--out``. Two checks, both needed:

- :func:`check_name`: one path component from a conservative character set (letters,
  digits, ``_ - . +``), not starting with a dot, no ``..``, at most 128 characters;
- :func:`inside`: the resolved path (symbolic links followed) lies inside its resolved
  root, so a link planted in the dataset cannot point out of it either.

Both raise :class:`UnsafePath`, a ``ValueError`` whose message names the value and where
it came from.
"""

from __future__ import annotations

import re
from pathlib import Path

#: One path component: starts with a letter, digit or underscore; then letters, digits, _ - . +
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


class UnsafePath(ValueError):
    """A name or path from a user's file that would leave its folder, or has odd characters."""


def check_name(value: object, what: str) -> str:
    """``value`` as a safe single path component, or :class:`UnsafePath` naming ``what``."""
    name = str(value)
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise UnsafePath(
            f"{what} {name[:80]!r} is not a safe name: use 1-128 letters, digits, '_', '-', '.' or '+', "
            "not starting with '.', without '..' or '/'."
        )
    return name


def check_relpath(value: object, what: str) -> Path:
    """A relative path of safe components separated by '/', e.g. a ``file_name``."""
    text = str(value)
    if not text or text.startswith("/") or "\\" in text:
        raise UnsafePath(f"{what} {text[:80]!r} must be a relative path with '/' separators.")
    return Path(*(check_name(part, what) for part in text.split("/")))


def inside(root: str | Path, path: str | Path, what: str) -> Path:
    """``path`` (relative to ``root``, or absolute) resolved; :class:`UnsafePath` unless it is in ``root``."""
    base = Path(root).resolve()
    resolved = (base / path).resolve()
    if resolved != base and base not in resolved.parents:
        raise UnsafePath(f"{what} resolves to {resolved}, outside {base}; refusing to use it.")
    return resolved


def join(root: str | Path, *parts: object, what: str) -> Path:
    """``root / part / ...`` with every part a safe name and the result inside ``root``."""
    relative = Path(*(check_name(part, what) for part in parts))
    inside(root, relative, what)
    return Path(root) / relative
