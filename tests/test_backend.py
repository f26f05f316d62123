import os
import subprocess
import sys

import mitsuba as mi
import pytest

import handlib
from handlib.rendering import backend


def _touch(directory, name):
    path = directory / name
    path.write_bytes(b"")
    return path


def test_llvm_major_parses_debian_and_llvm_dir_names():
    assert backend.llvm_major("/usr/lib/x86_64-linux-gnu/libLLVM-19.so") == 19
    assert backend.llvm_major("/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1") == 19
    assert backend.llvm_major("/usr/lib/llvm-18/lib/libLLVM.so.1") == 18
    assert backend.llvm_major("/usr/lib/x86_64-linux-gnu/libLLVM-15.so.1") == 15


def test_find_libllvm_prefers_19_and_never_takes_15(tmp_path):
    _touch(tmp_path, "libLLVM-15.so")
    assert backend.find_libllvm([str(tmp_path)]) is None
    _touch(tmp_path, "libLLVM-20.so")
    assert backend.find_libllvm([str(tmp_path)]).endswith("libLLVM-20.so")
    _touch(tmp_path, "libLLVM-19.so")
    assert backend.find_libllvm([str(tmp_path)]).endswith("libLLVM-19.so")


def test_configure_respects_user_path(monkeypatch, tmp_path):
    monkeypatch.setenv("DRJIT_LIBLLVM_PATH", "/my/libLLVM.so")
    _touch(tmp_path, "libLLVM-19.so")
    assert backend.configure_libllvm([str(tmp_path)]) == "/my/libLLVM.so"


def test_no_gpu_and_no_libllvm_names_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv("DRJIT_LIBLLVM_PATH", raising=False)
    monkeypatch.delenv("HANDLIB_VARIANT", raising=False)
    monkeypatch.setattr(backend, "LIBLLVM_SEARCH_DIRS", (str(tmp_path),))
    monkeypatch.setattr(backend, "_cuda_usable", lambda: False)
    monkeypatch.setattr(backend, "configure_libllvm", lambda: backend.find_libllvm([str(tmp_path)]))
    with pytest.raises(backend.BackendError, match="apt-get install libllvm19"):
        backend.select_variant()


def test_unknown_variant_is_a_value_error():
    with pytest.raises(ValueError, match="cuda_ad_rgb, llvm_ad_rgb"):
        backend.set_variant("scalar_spectral")


def test_first_use_selects_a_working_variant():
    variant = handlib.VARIANT  # chosen on first use (import chose nothing)
    assert variant in backend.SUPPORTED_VARIANTS
    assert mi.variant() == variant == handlib.VARIANT
    if handlib.VARIANT == "llvm_ad_rgb":
        assert backend.llvm_major(os.environ["DRJIT_LIBLLVM_PATH"]) in backend.PREFERRED_LLVM_MAJORS
    info = backend.describe()
    assert info["variant"] == handlib.VARIANT and info["mitsuba"]


def _import_with(env_updates):
    env = dict(os.environ, **env_updates)
    env.pop("DRJIT_LIBLLVM_PATH", None)
    code = "import handlib, mitsuba as mi; print(handlib.VARIANT, mi.variant())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_user_can_force_the_cpu_variant():
    result = _import_with({"HANDLIB_VARIANT": "llvm_ad_rgb"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["llvm_ad_rgb", "llvm_ad_rgb"]


def test_forcing_a_bogus_variant_fails_clearly():
    result = _import_with({"HANDLIB_VARIANT": "bogus_rgb"})
    assert result.returncode != 0
    assert "Unsupported Mitsuba variant 'bogus_rgb'" in result.stderr
