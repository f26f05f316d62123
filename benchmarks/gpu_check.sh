#!/usr/bin/env bash
# The one short check to run on a machine with a CUDA GPU (about 9 minutes on an H200 at most: each
# step has its own time limit, and the benchmarks append a row to their CSV as soon as it is
# measured, so a step that runs out keeps what it finished). It writes under benchmarks/gpu/
# (commit what it wrote):
#   1. the renderer tests that make sense on cuda_ad_rgb (silhouettes vs OpenCV, layouts agree,
#      gradients vs finite differences on both layouts and over backgrounds, radiance vs
#      closed-form SH);
#   2. benchmarks/render.py: 8 and 32 views at 334x512, 4 spp, reflectance, the ray tracer's newest
#      and oldest paths (traced, per_camera) and the raster baseline;
#   3. benchmarks/refine.py: SMVR frames at the paper profile's size (32 cameras, 334x512) for a
#      few iterations, traced against per_camera; a short DMVR video, traced.
# Sized from the first run on an H200 (2026-12-04, benchmarks/gpu/*.log): the tests took 92 s, each
# renderer row 20-30 s (a fresh process, its kernels compiled), and an SMVR iteration over 32
# cameras about 2.1 s. A machine without the packages (no registry reachable) can take them from
# PYTHONPATH: unpack the mitsuba, drjit and smplx wheels for its Python there and run with PY=python3.
# `bash benchmarks/gpu_check.sh --dry` runs the same steps on the CPU (llvm_ad_rgb) at toy sizes,
# to check the script itself; its CSVs go to benchmarks/gpu/dry/ (not committed).
# CI and the tests never depend on this script.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
command -v "$PY" >/dev/null || make .make/venv  # PY may be a path or a command (python3)
if [ "${1:-}" = "--dry" ]; then
    export HANDLIB_VARIANT=llvm_ad_rgb
    OUT=benchmarks/gpu/dry
    RENDER=(--views 2 --sizes quarter --spp 1 --modes reflectance --repeat 1)
    SMVR=(--methods smvr --cameras 2 --shrink 4 --iterations 8 --paths traced per_camera)
    DMVR=(--methods dmvr --cameras 2 --shrink 4 --frames 2 --iterations 2 --paths traced per_camera)
else
    export HANDLIB_VARIANT=cuda_ad_rgb
    OUT=benchmarks/gpu
    TESTS="tests/test_render.py tests/test_render_gradients.py tests/test_lighting_surface.py"
    RENDER=(--views 8 32 --sizes full --spp 4 --modes reflectance --paths traced per_camera --repeat 2)
    SMVR=(--methods smvr --cameras 32 --shrink 1 --iterations 12 --paths traced per_camera)
    DMVR=(--methods dmvr --cameras 8 --shrink 1 --frames 3 --iterations 2 --paths traced)
fi
mkdir -p "$OUT"
start=$(date +%s)
step() { echo "== $1 ($(($(date +%s) - start)) s)"; }
step "tests on $HANDLIB_VARIANT"
# shellcheck disable=SC2086  # TESTS is a list of paths (and, dry, a -k expression)
if [ "${1:-}" = "--dry" ]; then
    timeout 300 "$PY" -m pytest -q tests/test_render.py -k "shared_sensors_project_like_opencv or layouts_agree" \
        --junitxml="$OUT/tests.xml" || echo "TESTS FAILED"
else
    timeout 150 "$PY" -m pytest -q $TESTS --junitxml="$OUT/tests.xml" || echo "TESTS FAILED"
fi
step "renderer benchmark"
timeout 150 "$PY" benchmarks/render.py "${RENDER[@]}" --csv "$OUT/render.csv" || echo "RENDER BENCHMARK STOPPED"
step "SMVR frame"
timeout 150 "$PY" benchmarks/refine.py "${SMVR[@]}" --csv "$OUT/refine.csv" || echo "SMVR BENCHMARK STOPPED"
step "DMVR video"
timeout 120 "$PY" benchmarks/refine.py "${DMVR[@]}" --csv "$OUT/refine.csv" || echo "DMVR BENCHMARK STOPPED"
step "done"
