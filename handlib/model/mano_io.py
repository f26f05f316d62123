"""Read MANO-format hand model files safely: NPZ (ours) or the official pickles.

The official ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` are Python 2 pickles that store
some arrays as ``chumpy`` objects and ``J_regressor`` as a ``scipy.sparse`` matrix.
They are read here without chumpy, through an unpickler that admits array data
only: any other global in the file (``os.system``, ``builtins.eval``, ...) makes
loading fail, so a model file can never run code.
"""

from __future__ import annotations

import codecs
import copyreg
import math
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

#: Keys every MANO-format model must have (shapes for V vertices, F faces).
REQUIRED_KEYS = (
    "v_template",  # (V, 3) metres
    "f",  # (F, 3) triangle vertex ids
    "weights",  # (V, 16) skinning weights
    "J_regressor",  # (16, V)
    "kintree_table",  # (2, 16)
    "shapedirs",  # (V, 3, S)
    "posedirs",  # (V, 3, 135)
    "hands_components",  # (45, 45)
    "hands_mean",  # (45,)
)
MANO_WEBSITE = "https://mano.is.tue.mpg.de"


class _ChumpyStandIn:
    """Receives a pickled ``chumpy`` object's state; only its array ``x`` is used."""

    def __setstate__(self, state: dict) -> None:
        self.state = state


class _SparseStandIn:
    """Receives a pickled ``scipy.sparse`` matrix's state; rebuilt from arrays."""

    def __setstate__(self, state: dict) -> None:
        self.state = state


#: Largest model file read (MANO's pickles are about 4 MB).
MAX_MODEL_FILE_BYTES = 256 << 20
#: Largest array a model file may ask for, in elements (MANO's largest, posedirs, has 315,090).
MAX_ARRAY_ELEMENTS = 1 << 25

_multiarray = getattr(np, "_core", None) or np.core  # numpy 2 moved numpy.core
_multiarray = _multiarray.multiarray


def _checked_shape(shape: Any) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative ints whose product is within :data:`MAX_ARRAY_ELEMENTS`."""
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise pickle.UnpicklingError(f"array shape {shape!r} is not a tuple of non-negative integers")
    if math.prod(shape) > MAX_ARRAY_ELEMENTS:
        raise pickle.UnpicklingError(f"array shape {shape} exceeds the {MAX_ARRAY_ELEMENTS} elements accepted")
    return shape


def _ndarray(shape: Any, dtype: Any = float) -> np.ndarray:
    """``numpy.ndarray(shape, dtype)`` as a pickle may call it, within the size cap."""
    return np.ndarray(_checked_shape(shape), dtype)


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's pickle constructor (``_reconstruct(ndarray, shape, typecode)``), plain arrays within the cap."""
    if subtype is not _ndarray:
        raise pickle.UnpicklingError(f"array subtype {subtype!r} is not numpy.ndarray")
    return _multiarray._reconstruct(np.ndarray, _checked_shape(shape), dtype)


def _object_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` for the stand-in classes only (no other type is built)."""
    if cls not in (_ChumpyStandIn, _SparseStandIn) or base is not object or state is not None:
        raise pickle.UnpicklingError(f"object of {cls!r} on {base!r} is not chumpy or scipy.sparse data")
    return copyreg._reconstructor(cls, base, state)


def _latin1(text: Any, encoding: str = "latin1") -> bytes:
    """How Python 3 writes bytes in protocol 2: ``_codecs.encode(str, 'latin1')``, nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not byte data")
    return codecs.encode(text, encoding)


_NUMPY_GLOBALS = {
    ("numpy", "ndarray"): _ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("copy_reg", "_reconstructor"): _object_reconstructor,
    ("copyreg", "_reconstructor"): _object_reconstructor,
    ("_codecs", "encode"): _latin1,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy arrays, scipy.sparse and chumpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return _NUMPY_GLOBALS[(module, name)]
        if module.split(".")[0] == "chumpy":
            return _ChumpyStandIn
        if module.startswith("scipy.sparse") and name in ("csc_matrix", "csr_matrix", "coo_matrix"):
            return _SparseStandIn
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not array data")


def _to_array(key: str, value: Any) -> Any:
    if isinstance(value, _ChumpyStandIn):
        if "x" not in value.state:
            raise ValueError(
                f"Key {key!r} holds a chumpy expression, not a plain chumpy array; "
                "re-save the model with plain numpy arrays."
            )
        value = np.asarray(value.state["x"])
    if isinstance(value, _SparseStandIn):
        state = value.state
        fmt = state.get("format", "csc")
        if fmt not in ("csc", "csr") or not {"data", "indices", "indptr", "_shape"} <= set(state):
            raise ValueError(f"Key {key!r} holds a sparse matrix in an unsupported layout ({fmt}).")
        cls = scipy.sparse.csc_matrix if fmt == "csc" else scipy.sparse.csr_matrix
        shape = _checked_shape(tuple(state["_shape"]))  # validate_model makes it dense
        return cls((state["data"], state["indices"], state["indptr"]), shape=shape)
    if isinstance(value, np.ndarray):
        _checked_shape(value.shape)
    return value


def read_pickle(path: Path) -> dict[str, Any]:
    """Load a MANO pickle with the restricted unpickler; chumpy/sparse become arrays."""
    with open(path, "rb") as handle:
        try:
            raw = RestrictedUnpickler(handle, encoding="latin1").load()
        except pickle.UnpicklingError as err:
            raise ValueError(
                f"Refusing to load {path}: it is not a plain-array MANO pickle ({err}). "
                "Model files may hold numpy, scipy.sparse and chumpy arrays only."
            ) from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path} does not hold a dictionary of model arrays (found {type(raw).__name__}).")
    return {str(key): _to_array(str(key), value) for key, value in raw.items()}


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` model, each checked against :data:`MAX_ARRAY_ELEMENTS` before it is
    decompressed (a small archive can expand to gigabytes); no pickled objects."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.file_size > 8 * MAX_ARRAY_ELEMENTS + 4096:  # float64 data and the .npy header
                raise ValueError(
                    f"{path}: member {info.filename} expands to {info.file_size} bytes, more than "
                    f"an array of {MAX_ARRAY_ELEMENTS} elements."
                )
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def read_model_file(path: str | Path) -> dict[str, Any]:
    """Arrays of a MANO-format model from ``.pkl`` or ``.npz``, validated.

    Raises FileNotFoundError for a missing file and ValueError naming the file for anything
    else: not a MANO-format model, too large (:data:`MAX_MODEL_FILE_BYTES`, arrays beyond
    :data:`MAX_ARRAY_ELEMENTS`), corrupt, or asking for code.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Hand model file {path} not found. MANO is licence-gated: register at "
            f"{MANO_WEBSITE}, download MANO_RIGHT.pkl / MANO_LEFT.pkl and pass their path. "
            "Without it, handlib uses its open hand model (the default, model_path=None)."
        )
    if path.suffix not in (".npz", ".pkl"):
        raise ValueError(f"Unknown hand model file type {path.suffix!r} for {path}; expected .pkl or .npz.")
    size = path.stat().st_size
    if size > MAX_MODEL_FILE_BYTES:
        raise ValueError(f"Hand model file {path} has {size} bytes, more than the {MAX_MODEL_FILE_BYTES} accepted.")
    try:
        data = read_npz(path) if path.suffix == ".npz" else read_pickle(path)
        return validate_model(data, source=str(path))
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"Hand model file {path}: {err}") from err
    except Exception as err:  # a crafted file can make numpy or the unpickler raise anything
        raise ValueError(f"Cannot read hand model file {path}: {type(err).__name__}: {err}") from err


def validate_model(data: dict[str, Any], source: str = "model") -> dict[str, Any]:
    """Check MANO's keys and shapes; return plain float64/int64 numpy arrays."""
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(
            f"{source} is not a MANO-format hand model: missing keys {missing}. "
            f"Expected {list(REQUIRED_KEYS)} (MANO_RIGHT.pkl from {MANO_WEBSITE}, or handlib's NPZ)."
        )
    out = dict(data)
    for key in REQUIRED_KEYS:
        value = data[key]
        out[key] = value.toarray() if scipy.sparse.issparse(value) else np.asarray(value)
    n_verts = out["v_template"].shape[0]
    expected = {
        "v_template": (n_verts, 3),
        "weights": (n_verts, 16),
        "J_regressor": (16, n_verts),
        "kintree_table": (2, 16),
        "hands_components": (45, 45),
        "hands_mean": (45,),
    }
    for key, shape in expected.items():
        if out[key].shape != shape:
            raise ValueError(f"{source}: {key} has shape {out[key].shape}, expected {shape}.")
    if out["f"].ndim != 2 or out["f"].shape[1] != 3:
        raise ValueError(f"{source}: f has shape {out['f'].shape}, expected (F, 3) triangles.")
    faces = out["f"]
    if faces.dtype.kind not in "iu" or faces.size == 0:
        raise ValueError(f"{source}: f holds {faces.dtype} values, expected integer vertex ids.")
    if faces.min() < 0 or faces.max() >= n_verts:
        raise ValueError(f"{source}: f refers to vertex ids outside 0..{n_verts - 1}.")
    if out["shapedirs"].shape[:2] != (n_verts, 3) or out["posedirs"].shape != (n_verts, 3, 135):
        raise ValueError(
            f"{source}: shapedirs {out['shapedirs'].shape} / posedirs {out['posedirs'].shape} "
            f"do not match {n_verts} vertices (expected (V, 3, S) and (V, 3, 135))."
        )
    for key in REQUIRED_KEYS:
        dtype = np.int64 if key in ("f", "kintree_table") else np.float64
        out[key] = out[key].astype(dtype)
    return out


def mirror_model(data: dict[str, Any]) -> dict[str, Any]:
    """The left hand from a right hand model (or back) by reflecting x -> -x.

    Positions and offsets negate x; triangle winding is reversed so normals stay
    outward; axis-angle poses map (rx, ry, rz) -> (rx, -ry, -rz) (a rotation
    vector is a pseudovector); pose-corrective features (entries of R - I) pick
    up the sign s_i s_j of their matrix entry. Extra keys with known meaning
    (UVs, per-corner data, regressors, fingertip ids) follow.
    """
    sign = np.array([-1.0, 1.0, 1.0])
    out = dict(data)
    out["v_template"] = data["v_template"] * sign
    out["shapedirs"] = data["shapedirs"] * sign[None, :, None]
    feature_sign = np.tile(np.outer(sign, sign).reshape(9), 15)  # (135,)
    out["posedirs"] = data["posedirs"] * sign[None, :, None] * feature_sign[None, None, :]
    out["f"] = data["f"][:, ::-1].copy()
    rotvec_sign = np.tile(-sign, 15)  # (45,): (1, -1, -1) per joint
    out["hands_mean"] = data["hands_mean"] * rotvec_sign
    out["hands_components"] = data["hands_components"] * rotvec_sign[None, :]
    if "uv_corners" in data:  # (F, 3, 2), follows the reversed winding
        out["uv_corners"] = data["uv_corners"][:, ::-1].copy()
    if "side" in data:
        out["side"] = np.array("left" if str(data["side"]) == "right" else "right")
    return out


def fix_left_shapedirs(left_shapedirs: np.ndarray, right_shapedirs: np.ndarray) -> np.ndarray:
    """The known MANO_LEFT fix: its x shape directions carry the right hand's sign.

    If left and right ``shapedirs[:, 0, :]`` nearly agree (sum of absolute
    differences below 1, as InterHand2.6M's code tests), negate the left ones.
    Returns a corrected copy; a correctly mirrored model is left unchanged.
    """
    fixed = np.array(left_shapedirs, copy=True)
    if left_shapedirs.shape == right_shapedirs.shape:
        if np.abs(left_shapedirs[:, 0, :] - right_shapedirs[:, 0, :]).sum() < 1.0:
            fixed[:, 0, :] *= -1.0
    return fixed
