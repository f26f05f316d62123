"""Property-based tests (hypothesis) of everything that reads a user's files: random and mutated
``camera.json``, ``MANO_NeuralAnnot.json``, ``data.json``, ``joint_3d.json`` and model files.

The property: reading, planning and writing a unit's files either works or raises one of the
documented errors (``ValueError`` and its subclasses ``InputError`` / ``UnsafePath``, or
``FileNotFoundError``), and nothing is ever written outside the output folder. The README's
reliability section counts the cases (``max_examples`` below)."""

from __future__ import annotations

import copy
import json
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_hardening import small_model
from test_interhand import write_fixture

from handlib.data.interhand import ANNOTATION_KINDS, SIDES, InterHandReader, annotation_path
from handlib.model import mano_io
from handlib.pipeline.dataset import Selection, plan, unit_folder
from handlib.pipeline.refine import UnitResult, load_frames, read_images, write_unit_files

DOCUMENTED = (ValueError, FileNotFoundError)  # InputError and UnsafePath are ValueErrors
EXAMPLES = {"annotations": 300, "json_bytes": 100, "model_bytes": 200, "model_values": 150}
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}

# Leaves include what an attacker or a broken export would put in a name or a number.
NASTY = st.sampled_from(
    [
        "..",
        "../../escape",
        "/tmp/abs",
        "a/../../b",
        "",
        ".",
        "x\x00y",
        "cam/../..",
        "NaN",
        "1e309",
        "-1",
        "Capture0/../../../x.jpg",
    ]
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | NASTY
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6) | NASTY, inner, max_size=5),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("property") / "data"
    write_fixture(root)
    return root


def _contents(root: Path) -> dict:
    return {kind: json.loads(annotation_path(root, "test", kind).read_text()) for kind in ANNOTATION_KINDS}


def _mutate(value, rng: random.Random, replacement, depth: int = 0):
    """``value`` with one node (chosen by ``rng``, walking down) replaced, deleted or kept as a type mix-up."""
    children = (
        list(value.items()) if isinstance(value, dict) else list(enumerate(value)) if isinstance(value, list) else []
    )
    if not children or rng.random() < 0.25 or depth > 6:
        return replacement
    key, child = rng.choice(children)
    if isinstance(value, dict) and rng.random() < 0.15:
        return {k: v for k, v in value.items() if k != key}  # a key removed
    changed = _mutate(child, rng, replacement, depth + 1)
    if isinstance(value, dict):
        return {**value, key: changed}
    return [changed if i == key else v for i, v in enumerate(value)]


def _files_outside(base: Path, out: Path) -> set[str]:
    return {str(p) for p in base.rglob("*") if out not in p.parents and p != out}


def _exercise(root: Path, contents: dict, out: Path) -> None:
    """What refine-dataset does with a split, short of refining: read, plan, load, write a unit's files."""
    reader = InterHandReader(root, "test", contents)
    for key in reader.keys():
        frame = reader.frame(key)
        if frame is not None:
            for side in SIDES:
                frame.hand_params(side)
    for method in ("smvr", "dmvr"):
        for unit in plan(reader, Selection(hand="both"), method):
            try:
                folder = unit_folder(out, unit)
                frames, cameras = load_frames(reader, unit)
                read_images(frames, cameras)
            except DOCUMENTED:
                continue
            texture = np.zeros((4, 4, 3), np.uint8)
            write_unit_files(folder, UnitResult(unit, {}, [], texture, "texture.png", None, {"unit": unit.key}))
            assert out in folder.resolve().parents


@settings(max_examples=EXAMPLES["annotations"], **SETTINGS)
@given(kind=st.sampled_from(ANNOTATION_KINDS), seed=st.integers(0, 2**32 - 1), replacement=VALUES)
def test_mutated_annotations_fail_only_with_documented_errors(fixture_root, tmp_path_factory, kind, seed, replacement):
    contents = copy.deepcopy(_contents(fixture_root))
    contents[kind] = _mutate(contents[kind], random.Random(seed), replacement)
    base = tmp_path_factory.mktemp("run")
    out = base / "out"
    before = _files_outside(base, out)
    try:
        _exercise(fixture_root, contents, out)
    except DOCUMENTED:
        pass
    assert _files_outside(base, out) == before


@settings(max_examples=EXAMPLES["json_bytes"], **SETTINGS)
@given(kind=st.sampled_from(ANNOTATION_KINDS), cut=st.integers(0, 10**6), noise=st.binary(max_size=40))
def test_damaged_annotation_files_fail_only_with_documented_errors(fixture_root, tmp_path_factory, kind, cut, noise):
    root = tmp_path_factory.mktemp("damaged") / "data"
    shutil.copytree(fixture_root / "annotations", root / "annotations")
    path = annotation_path(root, "test", kind)
    text = path.read_bytes()
    cut %= len(text) + 1
    path.write_bytes(text[:cut] + noise + text[cut + len(noise) :])  # truncated, overwritten or extended
    try:
        reader = InterHandReader(root, "test")
        for key in reader.keys():
            reader.frame(key)
    except DOCUMENTED:
        pass


MODEL = pickle.dumps(small_model(12), protocol=2)  # a valid MANO-format pickle, 12 vertices


@settings(max_examples=EXAMPLES["model_bytes"], **SETTINGS)
@given(
    position=st.integers(0, len(MODEL)),
    noise=st.binary(min_size=1, max_size=24),
    mode=st.sampled_from(["overwrite", "insert", "truncate"]),
    suffix=st.sampled_from([".pkl", ".npz"]),
)
def test_damaged_model_files_load_or_raise_value_error_naming_the_file(tmp_path_factory, position, noise, mode, suffix):
    source = MODEL
    if suffix == ".npz":
        folder = tmp_path_factory.mktemp("npz")
        np.savez(folder / "m.npz", **pickle.loads(MODEL))
        source = (folder / "m.npz").read_bytes()
    position %= len(source) + 1
    damaged = {
        "overwrite": source[:position] + noise + source[position + len(noise) :],
        "insert": source[:position] + noise + source[position:],
        "truncate": source[:position],
    }[mode]
    path = tmp_path_factory.mktemp("model") / f"MANO_RIGHT{suffix}"
    path.write_bytes(damaged)
    try:
        data = mano_io.read_model_file(path)
    except ValueError as err:
        assert str(path) in str(err)
    else:
        assert data["v_template"].shape[1] == 3


@settings(max_examples=EXAMPLES["model_values"], **SETTINGS)
@given(key=st.sampled_from(mano_io.REQUIRED_KEYS), value=VALUES)
def test_model_files_with_random_values_raise_value_error_naming_the_file(tmp_path_factory, key, value):
    model = pickle.loads(MODEL)
    # a well-formed list of triangles over the model's 12 vertices is a valid value for f
    assume(not (key == "f" and _triangles(value, len(model["v_template"]))))
    model[key] = value
    path = tmp_path_factory.mktemp("values") / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(model, protocol=2))
    with pytest.raises(ValueError) as info:
        mano_io.read_model_file(path)
    assert str(path) in str(info.value)


def _triangles(value, vertices: int) -> bool:
    """Whether ``value`` is a non-empty list of triangles of integer ids below ``vertices``."""
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(
            isinstance(t, list) and len(t) == 3 and all(type(i) is int and 0 <= i < vertices for i in t) for t in value
        )
    )


def test_an_unmutated_fixture_passes_the_exercise(fixture_root, tmp_path):
    """The property tests mean something only if the untouched data gets all the way to writing."""
    _exercise(fixture_root, _contents(fixture_root), tmp_path / "out")
    written = sorted(str(p.parent.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("metrics.json"))
    # one folder per hand and span: SMVR's frame tasks and DMVR's sequence tasks share them here
    assert written == [
        "refinement/Capture0/ROM03_RT_No_Occlusion/left/21641",
        "refinement/Capture0/ROM03_RT_No_Occlusion/right/21640",
    ]
