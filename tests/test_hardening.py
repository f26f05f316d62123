"""Untrusted input and exposure: names that would become paths, crafted model files, the Dask
cluster's listening sockets and TLS, and importing handlib without a render back-end."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_interhand import write_fixture

from handlib.data import names
from handlib.data.interhand import InterHandReader, annotation_path
from handlib.model import mano_io
from handlib.pipeline.dataset import Cluster, Selection, connect, plan, refine_task, run_dataset, unit_folder
from handlib.pipeline.refine import Options

STUB = Options(method="dmvr", schedule_scale=0.05, spp=1)


@pytest.mark.parametrize(
    "name",
    [
        "0051_dinosaur",
        "ROM04_LT_Occlusion",
        "Capture0",
        "cam400262",
        "image22024.jpg",
        "synthetic_open_fist",
        "a-b+c.d",
    ],
)
def test_real_names_are_accepted(name):
    assert names.check_name(name, "sequence") == name


@pytest.mark.parametrize(
    "name", ["..", "../x", "a/b", "/abs", ".hidden", "", "a..b", "x" * 129, "a\x00b", "a b", "a\\b", "~"]
)
def test_crafted_names_are_refused(name):
    with pytest.raises(names.UnsafePath, match="sequence"):
        names.check_name(name, "sequence")


def test_join_and_inside_keep_paths_in_their_root(tmp_path):
    assert names.join(tmp_path, "a", "b.json", what="x") == tmp_path / "a" / "b.json"
    with pytest.raises(names.UnsafePath):
        names.join(tmp_path, "..", what="x")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)  # a link planted inside pointing out
    with pytest.raises(names.UnsafePath, match="outside"):
        names.inside(tmp_path / "root", "link/secret", "file_name")
    for bad in ("/etc/passwd", "../x.jpg", "a//b", "a/./b"):
        with pytest.raises(names.UnsafePath):
            names.check_relpath(bad, "file_name")


def test_reader_refuses_file_names_that_leave_the_images_folder(tmp_path):
    root = tmp_path / "data"
    write_fixture(root)
    (tmp_path / "secret.jpg").write_bytes(
        (root / "images" / "test" / "Capture0" / "ROM03_RT_No_Occlusion" / "cam400262" / "image21640.jpg").read_bytes()
    )
    planted = root / "images" / "test" / "planted.jpg"
    planted.symlink_to(tmp_path / "secret.jpg")
    data = json.loads(annotation_path(root, "test", "data").read_text())
    data["images"][0]["file_name"] = "../../../secret.jpg"
    data["images"][1]["file_name"] = str(tmp_path / "secret.jpg")
    data["images"][2]["file_name"] = "planted.jpg"
    annotation_path(root, "test", "data").write_text(json.dumps(data))
    reader = InterHandReader(root, "test")
    frames = list(reader)
    assert all(not frame.image_paths for frame in frames[:1])  # both cameras of the first frame refused
    assert "400262" not in frames[1].image_paths  # the planted link
    reasons = [reason for _, reason in reader.skipped]
    assert sum("image refused" in r for r in reasons) == 3, reasons
    assert any("outside" in r for r in reasons) and any("not a safe name" in r for r in reasons)


def _crafted_dataset(tmp_path: Path, sequence: str) -> Path:
    """The interhand fixture with the left-hand frame's sequence renamed to ``sequence``."""
    root = tmp_path / "data"
    write_fixture(root)
    data = json.loads(annotation_path(root, "test", "data").read_text())
    for record in data["images"]:
        if record["frame_idx"] == 21641:
            record["seq_name"] = sequence
    annotation_path(root, "test", "data").write_text(json.dumps(data))
    return root


def stub_task(root, split, contents, unit, options, out, threads):
    """What refine_task writes, without refining: a file in the unit's folder."""
    folder = unit_folder(Path(out), unit)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text("{}")
    return {"status": "done", "entries": {}, "frames": [], "summary": {"seconds": 0.0}}


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("sequence", ["../../../../escape", "/ABSOLUTE/escape", ".."])
def test_a_crafted_sequence_name_fails_its_task_and_writes_nothing_outside(tmp_path, sequence):
    sequence = sequence.replace("/ABSOLUTE", str(tmp_path))
    data = _crafted_dataset(tmp_path, sequence)
    before = _files(tmp_path)
    report = run_dataset(
        data,
        "test",
        tmp_path / "out",
        Selection(hand="both"),
        STUB,
        Cluster(workers=1, threads=1),
        log=lambda line: None,
        task=stub_task,
    )
    assert report.done == 1 and len(report.failed) == 1, report
    key, reason = report.failed[0]
    assert key.startswith(f"0/{sequence}/left") and "not a safe name" in reason
    written = _files(tmp_path) - before
    assert written and all(path.startswith("out") for path in written), sorted(written)
    assert (tmp_path / "out" / "refinement" / "Capture0" / "ROM03_RT_No_Occlusion" / "right").is_dir()
    # The worker checks too (a task reached through another scheduler): failed, nothing written.
    reader = InterHandReader(data, "test")
    unit = next(u for u in plan(reader, Selection(hand="left"), "dmvr"))
    result = refine_task(
        str(data), "test", reader.subset([(0, sequence, 21641)]), unit, STUB, str(tmp_path / "out2"), 1
    )
    assert result["status"] == "failed" and "not a safe name" in result["reason"]
    assert not (tmp_path / "out2").exists() and not (tmp_path / "escape").exists()


def test_split_names_are_checked(tmp_path):
    with pytest.raises(names.UnsafePath, match="split"):
        InterHandReader(tmp_path, "../../etc")


# ---- model files -------------------------------------------------------------------------------


def _pickle_file(tmp_path: Path, payload: bytes) -> Path:
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(payload)
    return path


# Hand-written protocol-2 opcodes: GLOBAL 'module\nname\n', BININT 'J', TUPLEn, REDUCE 'R', STOP '.'
HUGE_RECONSTRUCT = (
    b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
    b"J\x00\x00\x00\x7f\x85U\x01b\x87R."
)  # _reconstruct(ndarray, (2**31 - 2**24,), 'b')
HUGE_NDARRAY = b"\x80\x02cnumpy\nndarray\nJ\x00\x00\x00\x7f\x85R."  # ndarray((2**31 - 2**24,)) of float64
CRAFTED_DTYPE = b"\x80\x02cnumpy\ndtype\nX\x03\x00\x00\x00zz9\x85R."  # dtype('zz9'): TypeError in numpy
OTHER_CODEC = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R."
NDARRAY_OBJECT = b"\x80\x02ccopyreg\n_reconstructor\ncnumpy\nndarray\ncnumpy\nndarray\nJ\x00\x00\x00\x7f\x87R."


@pytest.mark.parametrize(
    "payload, message",
    [
        (HUGE_RECONSTRUCT, "exceeds the"),
        (HUGE_NDARRAY, "exceeds the"),
        (CRAFTED_DTYPE, "TypeError"),
        (OTHER_CODEC, "not byte data"),
        (NDARRAY_OBJECT, "not chumpy or scipy.sparse"),
        (b"\x80\x02", "EOFError|pickle data was truncated"),
        (b"not a pickle", "Cannot read|plain-array"),
    ],
)
def test_crafted_model_pickles_fail_with_a_value_error_naming_the_file(tmp_path, payload, message):
    path = _pickle_file(tmp_path, payload)
    with pytest.raises(ValueError, match=message) as info:
        mano_io.read_model_file(path)
    assert str(path) in str(info.value)


def small_model(vertices: int = 20) -> dict[str, np.ndarray]:
    """A valid MANO-format model of ``vertices`` random vertices (the readers' tests need no real hand)."""
    rng = np.random.default_rng(0)
    return {
        "v_template": rng.normal(size=(vertices, 3)),
        "f": rng.integers(0, vertices, (10, 3)),
        "weights": rng.random((vertices, 16)),
        "J_regressor": rng.random((16, vertices)),
        "kintree_table": np.stack([np.arange(16) - 1, np.arange(16)]),
        "shapedirs": rng.normal(size=(vertices, 3, 10)),
        "posedirs": rng.normal(size=(vertices, 3, 135)),
        "hands_components": np.eye(45),
        "hands_mean": np.zeros(45),
    }


def test_model_file_size_and_array_caps(tmp_path, monkeypatch):
    path = _pickle_file(tmp_path, pickle.dumps(small_model(), protocol=2))
    assert mano_io.read_model_file(path)["v_template"].shape == (20, 3)
    monkeypatch.setattr(mano_io, "MAX_MODEL_FILE_BYTES", 1000)
    with pytest.raises(ValueError, match="more than the 1000 accepted"):
        mano_io.read_model_file(path)
    monkeypatch.setattr(mano_io, "MAX_MODEL_FILE_BYTES", 1 << 30)
    monkeypatch.setattr(mano_io, "MAX_ARRAY_ELEMENTS", 1000)  # posedirs has 8100
    with pytest.raises(ValueError, match="exceeds the 1000 elements") as info:
        mano_io.read_model_file(path)
    assert str(path) in str(info.value)
    npz = tmp_path / "model.npz"
    np.savez_compressed(npz, **small_model())  # compressed: the archive is small, its members are not
    with pytest.raises(ValueError, match="expands to"):
        mano_io.read_model_file(npz)


@pytest.mark.parametrize(
    "faces", [np.zeros((10, 3), bool), np.full((10, 3), 0.5), np.full((10, 3), 20), np.full((10, 3), -1)]
)
def test_model_faces_must_be_vertex_ids_of_the_model(tmp_path, faces):
    """Faces that are not integer ids of the model's 20 vertices (booleans, fractions, ids past the
    last vertex or negative) are refused with the file's name, not read as some other triangles."""
    model = small_model()
    model["f"] = faces
    path = _pickle_file(tmp_path, pickle.dumps(model, protocol=2))
    with pytest.raises(ValueError, match="f ") as info:
        mano_io.read_model_file(path)
    assert str(path) in str(info.value)


# ---- Dask exposure -----------------------------------------------------------------------------


def _listening(pid: int) -> list[tuple[str, int]]:
    import psutil

    process = psutil.Process(pid)
    found = []
    for proc in [process, *process.children(recursive=True)]:
        try:
            found += [
                (c.laddr.ip, c.laddr.port) for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
            ]
        except psutil.NoSuchProcess:
            continue
    return found


def test_local_cluster_and_dashboard_listen_on_loopback_only():
    with connect(Cluster(workers=1, threads=1)) as client:
        port = int(client.dashboard_link.split(":")[-1].split("/")[0])
        sockets = _listening(os.getpid())
        assert client.submit(sum, [1, 2]).result() == 3
    assert port in {p for _, p in sockets}, sockets  # the dashboard is served...
    assert sockets and all(ip in ("127.0.0.1", "::1") for ip, _ in sockets), sockets  # ...on loopback only


def test_cluster_tls_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="all three"):
        Cluster(scheduler="tls://host:8786", tls_ca_file="ca.pem")
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    files = {
        k: str(tmp_path / v) for k, v in (("tls_ca_file", "ca.pem"), ("tls_cert", "cert.pem"), ("tls_key", "key.pem"))
    }
    with pytest.raises(ValueError, match="tls://"):
        Cluster(scheduler="tcp://host:8786", **files)
    with pytest.raises(FileNotFoundError, match="missing.pem"):
        Cluster(scheduler="tls://host:8786", **{**files, "tls_key": str(tmp_path / "missing.pem")})


def _certificates(folder: Path) -> dict[str, str]:
    """A throw-away CA and one certificate it signs (as Dask's TLS documentation sets up)."""

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=handlib-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "key.pem", "-out", "req.csr")
    openssl(
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "cert.pem",
    )
    return {
        "tls_ca_file": str(folder / "ca.pem"),
        "tls_cert": str(folder / "cert.pem"),
        "tls_key": str(folder / "key.pem"),
    }


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_scheduler_serves_a_client_with_certificates_and_refuses_one_without(tmp_path):
    from distributed import Client

    tls = _certificates(tmp_path)
    flags = ["--tls-ca-file", tls["tls_ca_file"], "--tls-cert", tls["tls_cert"], "--tls-key", tls["tls_key"]]
    dask = str(Path(sys.executable).with_name("dask"))
    info = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [
            dask,
            "scheduler",
            "--protocol",
            "tls",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(info),
            *flags,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        for _ in range(100):
            if info.is_file() and info.stat().st_size:
                break
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tls://127.0.0.1:")
        worker = subprocess.Popen(
            [dask, "worker", address, "--nthreads", "1", "--host", "127.0.0.1", *flags],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with connect(Cluster(scheduler=address, **tls)) as client:
            client.wait_for_workers(1, timeout=60)
            assert client.submit(sum, [2, 3]).result() == 5
        with pytest.raises((OSError, TimeoutError)):  # no certificate: the scheduler does not talk to it
            Client(address.replace("tls://", "tcp://"), timeout=3)
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


# ---- import without a render back-end ------------------------------------------------------------


def test_import_has_no_side_effect_and_pure_modules_need_no_renderer():
    code = (
        "import sys, handlib, handlib.data.interhand\n"
        "from handlib.methods import losses, metrics, temporal, lod\n"
        "print(sorted(m for m in ('mitsuba', 'drjit') if m in sys.modules))\n"
        "handlib.VARIANT\n"
    )
    env = dict(os.environ, HANDLIB_VARIANT="bogus_rgb")  # the variant is chosen at first use only
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr
    assert result.returncode != 0 and "Unsupported Mitsuba variant 'bogus_rgb'" in result.stderr


# ---- install -----------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def test_the_makefile_names_no_package_host():
    lines = [line for line in (ROOT / "Makefile").read_text().splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in lines if "://" in line or "curl " in line or "wget " in line]


def test_without_libllvm19_in_the_repositories_make_says_what_to_do(tmp_path):
    """The system step on a distribution whose apt has no libllvm19 (apt stood in for by `true`
    and `false`): it stops, naming backports, the conda route and DRJIT_LIBLLVM_PATH."""
    result = subprocess.run(
        [
            "make",
            "-s",
            "system",
            f"STAMPS={tmp_path}",
            "LIBLLVM_GLOB=/nonexistent/libLLVM-19.so",
            "SUDO=",
            "APT_GET=true",
            "APT_CACHE=false",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and not (tmp_path / "system").exists()
    for hint in ("no libllvm19", "backports", "conda env create -f environment.yml", "DRJIT_LIBLLVM_PATH"):
        assert hint in result.stderr, result.stderr
