"""Reading MANO model files: official-style pickles without chumpy, safely."""

import importlib.util
import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from handlib.model.assets import OPEN_HAND_RIGHT
from handlib.model.hand import HandModel, HandParams, load_model_data
from handlib.model.mano_io import REQUIRED_KEYS, fix_left_shapedirs, mirror_model, read_model_file


def _fake_chumpy_module():
    """A stand-in 'chumpy.ch' module whose Ch pickles like chumpy's (state dict with x)."""
    module = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x
            self.dterms = ()

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    module.Ch = Ch
    return module


def write_chumpy_style_pickle(path, arrays):
    """Write MANO arrays as the official files do: chumpy arrays, sparse J_regressor, protocol 2."""
    assert importlib.util.find_spec("chumpy") is None, "chumpy must not be installed for this test"
    module = _fake_chumpy_module()
    sys.modules["chumpy"] = types.ModuleType("chumpy")
    sys.modules["chumpy.ch"] = module
    try:
        data = {key: arrays[key] for key in REQUIRED_KEYS}
        for key in ("shapedirs", "posedirs", "hands_components", "hands_mean"):
            data[key] = module.Ch(np.asarray(arrays[key], dtype=np.float64))
        data["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
        data["bs_style"] = "lbs"
        with open(path, "wb") as handle:
            pickle.dump(data, handle, protocol=2)
    finally:
        del sys.modules["chumpy.ch"], sys.modules["chumpy"]


@pytest.fixture(scope="module")
def open_arrays():
    return read_model_file(OPEN_HAND_RIGHT)


def test_chumpy_style_pickle_loads_without_chumpy(tmp_path, open_arrays):
    write_chumpy_style_pickle(tmp_path / "MANO_RIGHT.pkl", open_arrays)
    assert "chumpy" not in sys.modules
    loaded = read_model_file(tmp_path / "MANO_RIGHT.pkl")
    for key in REQUIRED_KEYS:
        np.testing.assert_allclose(loaded[key], open_arrays[key], atol=1e-6, err_msg=key)
    # Through the same HandModel path, the user's file gives the same hand as our NPZ.
    params = HandParams(torch.tensor([[0.1, 0.2, 0.3]]), 0.2 * torch.ones(1, 45), torch.ones(1, 10), torch.zeros(1, 3))
    user = HandModel("right", model_path=tmp_path)
    ours = HandModel("right")
    torch.testing.assert_close(user(params).vertices, ours(params).vertices, atol=1e-3, rtol=0)
    # Without our extra keys the 21 joints come from J_regressor + smplx's tip ids.
    assert user.tip_vertex_ids.tolist() == [744, 320, 443, 554, 671]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/handlib_pwned",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Exploit()}, protocol=2))
    with pytest.raises(ValueError, match="Refusing to load .*not array data"):
        read_model_file(path)
    assert not os.path.exists("/tmp/handlib_pwned")


def test_pickle_without_mano_keys(tmp_path):
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps({"v_template": np.zeros((10, 3))}, protocol=2))
    with pytest.raises(ValueError, match=r"not a MANO-format hand model: missing keys \['f', 'weights'"):
        read_model_file(path)


def test_wrong_shapes_are_reported(tmp_path, open_arrays):
    bad = dict(open_arrays)
    bad["weights"] = bad["weights"][:, :15]
    np.savez(tmp_path / "bad.npz", **{k: bad[k] for k in REQUIRED_KEYS})
    with pytest.raises(ValueError, match=r"weights has shape \(1609, 15\), expected \(1609, 16\)"):
        read_model_file(tmp_path / "bad.npz")


def test_missing_model_file_says_where_mano_comes_from(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"mano\.is\.tue\.mpg\.de.*open hand model"):
        HandModel("right", model_path=tmp_path)
    with pytest.raises(FileNotFoundError, match="MANO_LEFT.pkl"):
        HandModel("left", model_path=tmp_path / "MANO_LEFT.pkl")


def test_unknown_extension_and_side(tmp_path):
    (tmp_path / "hand.obj").write_text("v 0 0 0\n")
    with pytest.raises(ValueError, match="expected .pkl or .npz"):
        read_model_file(tmp_path / "hand.obj")
    with pytest.raises(ValueError, match="side must be 'right' or 'left'"):
        load_model_data(None, "both")


def test_left_shapedirs_fix_applies_to_official_style_files(tmp_path, open_arrays):
    left = mirror_model(open_arrays)
    broken = dict(left)
    broken["shapedirs"] = left["shapedirs"].copy()
    broken["shapedirs"][:, 0, :] = open_arrays["shapedirs"][:, 0, :]  # MANO_LEFT's known defect
    write_chumpy_style_pickle(tmp_path / "MANO_RIGHT.pkl", open_arrays)
    write_chumpy_style_pickle(tmp_path / "MANO_LEFT.pkl", broken)
    model = HandModel("left", model_path=tmp_path)
    np.testing.assert_allclose(model.layer.shapedirs.numpy(), left["shapedirs"], atol=1e-6)
    # A correct left model is left alone.
    np.testing.assert_array_equal(fix_left_shapedirs(left["shapedirs"], open_arrays["shapedirs"]), left["shapedirs"])


def test_mirror_twice_is_identity(open_arrays):
    twice = mirror_model(mirror_model(open_arrays))
    for key in REQUIRED_KEYS + ("uv_corners",):
        np.testing.assert_array_equal(twice[key], open_arrays[key], err_msg=key)
