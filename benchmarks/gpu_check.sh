#!/usr/bin/env bash
# The one short check to run on a machine with a CUDA GPU (under 8 minutes on an H100/H200 once the
# environment is installed). It writes its CSVs under benchmarks/gpu/ (commit them):
#   1. the renderer tests that make sense on cuda_ad_rgb (silhouettes vs OpenCV, layouts agree,
#      gradients vs finite differences on both layouts and over backgrounds, radiance vs
#      closed-form SH);
#   2. benchmarks/render.py: 8 and 32 views at 334x512, 4 spp, both modes, the ray tracer's three
#      paths (traced, composite, per_camera) and the raster baseline;
#   3. benchmarks/refine.py: one SMVR frame at the paper profile's scale (32 cameras, 334x512,
#      230 iterations) and one DMVR video (16 cameras x 10 frames, a few iterations), newest
#      path (traced) against the oldest (per_camera).
# `bash benchmarks/gpu_check.sh --dry` runs the same steps on the CPU (llvm_ad_rgb) at toy sizes,
# to check the script itself; its CSVs go to benchmarks/gpu/dry/ (not committed).
# CI and the tests never depend on this script.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || make .make/venv
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
    RENDER=(--views 8 32 --sizes full --spp 4 --repeat 3)
    SMVR=(--methods smvr --cameras 32 --shrink 1 --paths traced per_camera)
    DMVR=(--methods dmvr --cameras 16 --shrink 1 --frames 10 --iterations 5 --paths traced per_camera)
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
    timeout 240 "$PY" -m pytest -q $TESTS --junitxml="$OUT/tests.xml" || echo "TESTS FAILED"
fi
step "renderer benchmark"
timeout 150 "$PY" benchmarks/render.py "${RENDER[@]}" --csv "$OUT/render.csv" || echo "RENDER BENCHMARK STOPPED"
step "SMVR frame"
timeout 120 "$PY" benchmarks/refine.py "${SMVR[@]}" --csv "$OUT/refine.csv" || echo "SMVR BENCHMARK STOPPED"
step "DMVR video"
timeout 90 "$PY" benchmarks/refine.py "${DMVR[@]}" --csv "$OUT/refine.csv" || echo "DMVR BENCHMARK STOPPED"
step "done"
