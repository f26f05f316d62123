"""Renderer benchmark: forward+backward time and peak memory per iteration, against plain ray casting.

For every combination of views x resolution x spp x mode x generator it measures,
in a fresh process (so that peak memory is that configuration's own):

- the time of one optimisation-like iteration: render every view, a weighted sum of
  the images as the loss, backward to vertices, texture and (radiance) SH light;
- the time Mitsuba takes to cast the same number of plain primary rays at the same
  mesh (``ray_intersect_preliminary``: no shading, no gradients), measured in the
  same process, so the ratio is free of machine noise between runs;
- the Dr.Jit kernel launches of one iteration and the time its kernels ran
  (``dr.JitFlag.KernelHistory``), so that the fixed cost per view splits into kernels and the rest;
- the process's peak resident memory.

Every view is rendered over a background colour, as the methods render. The ray tracer runs
along three paths (``--paths``), so old and new are compared in one run:

- ``traced``: one world scene for all cameras, the background seen by the camera rays that miss
  the hand (one projective render per view; the default since 0.4);
- ``composite``: the same scene, the background composited with a differentiable coverage
  render (two per view; 0.3);
- ``per_camera``: each camera in its own film space, composited (the path before the speed issue).

It prints a table with the ratios the renderer issue asks for, and the fixed cost per view (the
intercept of time against spp, from spp 1 and 4), and appends every row to a CSV (default
``benchmarks/render.csv``) with the machine it ran on. The CSV's ``backdrop`` column says
``black`` for rows measured before the benchmark rendered backgrounds.

    python benchmarks/render.py                         # the full grid (GPU-sized)
    python benchmarks/render.py --views 1 8 --spp 1 4   # a CPU-sized subset
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZES = {"full": (334, 512), "quarter": (167, 256)}  # InterHand2.6M's images, and half of each side
#: The ray tracer's paths: (scene layout, how the background is rendered).
PATHS = {
    "traced": ("shared", "traced"),
    "composite": ("shared", "composite"),
    "per_camera": ("per_camera", "composite"),
}
BACKGROUND = (0.3, 0.35, 0.4)  # every view's, as SMVR and DMVR estimate one colour per camera


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append ``rows`` to the CSV at ``path`` (the header first when the file is new). When the
    rows bring columns the file lacks, the file is rewritten with them (earlier rows blank there)."""
    fields = list(rows[0])
    earlier: list[dict] = []
    if path.is_file():
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            if header != fields:
                earlier = list(reader)
        if header == fields:
            with path.open("a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=fields).writerows(rows)
            return
        fields = header + [f for f in fields if f not in header]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(earlier + rows)


def in_child(script: str, config: dict) -> dict | None:
    """Run ``script --one CONFIG`` in a fresh process (so that its peak memory is its own) and
    return the row it prints last; None (and the error on stderr) when it failed."""
    out = subprocess.run([sys.executable, script, "--one", json.dumps(config)], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"FAILED {config}:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    import handlib

    if handlib.VARIANT.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CUDA GPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    return platform.processor() or "unknown CPU"


def run_one(config: dict) -> dict:
    """Measure one configuration (called in a child process)."""
    import drjit as dr
    import mitsuba as mi
    import numpy as np
    import torch

    import handlib
    from handlib.geometry.cameras import dome_cameras, film_space
    from handlib.geometry.surface import HandSurface
    from handlib.model.hand import HandModel, HandParams
    from handlib.rendering import lighting
    from handlib.rendering.raster import first_hits, sample_positions
    from handlib.rendering.renderer import Renderer, RenderSettings
    from handlib.rendering.scene import build_scene, hand_mesh, integrator_dict
    from handlib.rendering.texture import model_skin_texture

    hand = HandModel("right")
    surface = HandSurface.of(hand)
    vertices = hand(HandParams.zeros()).vertices[0].detach()
    width, height = SIZES[config["size"]]
    scale = width / 334
    cameras = dome_cameras(
        config["views"],
        vertices.mean(0).numpy(),
        size=(width, height),
        focal=(1240.0 * scale, 1240.0 * scale),
        jitter_px=10.0 * scale,
    )
    texture = model_skin_texture(hand, size=512)
    light = lighting.uniform(0.8)
    light[2] = torch.tensor([0.4, 0.4, 0.4])
    settings = RenderSettings(
        mode=config["mode"],
        generator=config["generator"],
        spp=config["spp"],
        layout=config["layout"],
        backdrop=config["backdrop"] if config["generator"] == "raytrace" else "composite",
    )
    renderer = Renderer(cameras, surface, settings)
    generator = torch.Generator().manual_seed(0)
    weights = [torch.rand(c.height, c.width, 3, generator=generator) for c in cameras]

    def iteration():
        shift = torch.zeros(3, requires_grad=True)
        tex = texture.clone().requires_grad_(True)
        sh = light.clone().requires_grad_(config["mode"] == "radiance")
        rendered = renderer.render(vertices + shift, tex, sh, backgrounds=[BACKGROUND] * len(cameras))
        loss = sum((w * image).sum() for w, image in zip(weights, rendered.images))
        loss.backward()
        return float(loss)

    iteration()  # compile kernels
    with dr.scoped_set_flag(dr.JitFlag.KernelHistory, True):
        dr.kernel_history()  # empties it
        iteration()
        dr.sync_thread()
        history = dr.kernel_history()
    launches = len(history)
    kernel_s = sum(k.get("execution_time", 0.0) for k in history) / 1000.0  # Dr.Jit reports ms
    times = []
    for _ in range(config["repeat"]):
        start = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - start)

    # Plain primary rays at the same mesh, same count: views x pixels x spp (in film space).
    white = {"type": "area", "radiance": {"type": "rgb", "value": 1.0}}
    plain = build_scene(
        cameras, config["spp"], hand_mesh(surface, {"emitter": white}, False), integrator_dict(settings, "reflectance")
    )
    scene, params = plain.scene, plain.params
    views = [
        (
            camera,
            film_space(camera, surface.close(vertices)).float().reshape(-1).numpy(),
            sample_positions(camera, config["spp"], generator).reshape(-1, 2),
        )
        for camera in cameras
    ]

    def cast():
        for camera, positions, pixels in views:
            params["hand.vertex_positions"] = mi.Float(positions)
            params.update()
            first_hits(scene, camera, pixels)  # returns numpy: the rays have been cast
        dr.sync_thread()

    cast()
    ray_times = []
    for _ in range(config["repeat"]):
        start = time.perf_counter()
        cast()
        ray_times.append(time.perf_counter() - start)
    samples = config["views"] * width * height * config["spp"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        **config,
        "variant": handlib.VARIANT,
        "machine": machine(),
        "samples": samples,
        "iteration_s": float(np.median(times)),
        "plain_rays_s": float(np.median(ray_times)),
        "peak_rss_mb": round(peak_mb, 1),
        "launches": launches,
        "kernel_s": round(kernel_s, 4),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--spp", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--modes", nargs="+", default=["reflectance", "radiance"])
    parser.add_argument("--generators", nargs="+", default=["raytrace", "raster"])
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS), help="the ray tracer's")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--csv", type=Path, default=Path(__file__).with_name("render.csv"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return
    rows = []
    grid = itertools.product(args.views, args.sizes, args.spp, args.modes, args.generators, args.paths)
    for views, size, spp, mode, generator, path in grid:
        if generator == "raster" and path != args.paths[0]:
            continue  # the raster baseline has one path (film space, composited); measured once
        layout, backdrop = PATHS[path] if generator == "raytrace" else ("per_camera", "composite")
        config = {
            "views": views,
            "size": size,
            "spp": spp,
            "mode": mode,
            "generator": generator,
            "layout": layout,
            "backdrop": backdrop,
            "repeat": args.repeat,
        }
        row = in_child(__file__, config)
        if row is None:
            continue
        row["throughput_ratio"] = round(row["plain_rays_s"] / row["iteration_s"], 4)
        rows.append(row)
        append_rows(args.csv, [{"date": time.strftime("%Y-%m-%d %H:%M"), **row}])  # kept if a later row times out
        print(
            f"{views:>3} views {size:>7} spp {spp:>2} {mode:>11} {generator:>8} {layout:>10} {backdrop:>9}: "
            f"{row['iteration_s']:.3f} s/iter, plain rays {row['plain_rays_s']:.4f} s, "
            f"ratio {row['throughput_ratio']:.3f}, {row['launches']} launches, peak {row['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    if not rows:
        return
    print_ratios(rows)


def path_of(row: dict) -> str:
    """The path a row measured: a key of :data:`PATHS`, or ``raster``."""
    if row.get("generator", "raytrace") == "raster":
        return "raster"
    return next(name for name, path in PATHS.items() if path == (row["layout"], row["backdrop"]))


def print_ratios(rows: list[dict]) -> None:
    """The issue's ratios, for each configuration where both sides were measured: per path, ray
    tracing against the raster baseline, the oldest path (per_camera) against it, and the
    differentiable samples' throughput against plain rays; then the fixed cost per view."""
    index = {(r["views"], r["size"], r["spp"], r["mode"], path_of(r)): r for r in rows}
    nan = float("nan")

    def seconds(views, size, spp, mode, path):
        row = index.get((views, size, spp, mode, path))
        return row["iteration_s"] if row else nan

    print(
        "\nviews size    spp path        raytrace/raster (refl, rad)  per_camera/path (refl, rad)  "
        "diff samples/s / plain rays/s (refl)"
    )
    modes = ("reflectance", "radiance")
    for views, size, spp in sorted({k[:3] for k in index}):
        for path in PATHS:
            traced = index.get((views, size, spp, "reflectance", path))
            if traced is None:
                continue
            ratios = [seconds(views, size, spp, m, path) / seconds(views, size, spp, m, "raster") for m in modes]
            speedup = [seconds(views, size, spp, m, "per_camera") / seconds(views, size, spp, m, path) for m in modes]
            print(
                f"{views:>5} {size:>7} {spp:>3} {path:<10} {ratios[0]:>10.2f} {ratios[1]:>8.2f}  "
                f"{speedup[0]:>14.2f} {speedup[1]:>8.2f}  {traced['throughput_ratio']:>24.3f}"
            )
    print("\nfixed cost per view (ms; intercept against spp, from spp 1 and 4): whole iteration, its kernels")
    for views, size, mode, path in sorted({(k[0], k[1], k[3], k[4]) for k in index}):
        pair = [index.get((views, size, spp, mode, path)) for spp in (1, 4)]
        if None in pair:
            continue
        intercepts = []
        for column in ("iteration_s", "kernel_s"):
            one, four = (float(row.get(column, nan)) for row in pair)
            intercepts.append(1000 * (one - (four - one) / 3.0) / views)
        print(f"{views:>5} {size:>7} {mode:>11} {path:<10} {intercepts[0]:8.1f} {intercepts[1]:8.1f}")


if __name__ == "__main__":
    main()
