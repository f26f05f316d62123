"""The ``handlib`` command line."""
from __future__ import annotations

import argparse
import sys


def _synth(args: argparse.Namespace) -> int:
    from handlib.synth import SynthSettings, synthesize

    gestures = tuple(name.strip() for name in args.gestures.split(",") if name.strip())
    try:
        settings = SynthSettings(cameras=args.cameras, gestures=gestures, subjects=args.subjects, frames=args.frames,
                                 noise_mm=args.noise_mm, seed=args.seed, spp=args.spp, shrink=args.shrink,
                                 texture_size=args.texture_size, directional_light=args.directional_light,
                                 colour_response=args.colour_response, occluded_views=args.occluded_views,
                                 split=args.split)
    except ValueError as err:
        print(f"handlib synth: {err}", file=sys.stderr)
        return 2
    out = synthesize(args.out, settings, progress=not args.quiet)
    print(f"wrote {out} (InterHand2.6M layout, split {settings.split}; truth in {out / 'ground_truth'})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="handlib", description="Refine 3D hand annotations by render-and-compare.")
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser("synth", help="write a synthetic InterHand2.6M-like capture with ground truth")
    synth.add_argument("--out", required=True, help="output directory")
    synth.add_argument("--cameras", type=int, default=8)
    synth.add_argument("--gestures", default="open,fist", help="comma-separated: open, relaxed, point, "
                       "thumbs_up, peace, three, horns, ok, fist")
    synth.add_argument("--subjects", type=int, default=1)
    synth.add_argument("--frames", type=int, default=1)
    synth.add_argument("--noise-mm", type=float, default=5.0, help="mean per-vertex error of the initial estimate")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--spp", type=int, default=16)
    synth.add_argument("--shrink", type=int, default=1, help="divide InterHand2.6M's 334x512 images by this")
    synth.add_argument("--texture-size", type=int, default=1024)
    synth.add_argument("--directional-light", type=float, default=0.0, help="0 studio-uniform .. 1 strong key light")
    synth.add_argument("--colour-response", type=float, default=0.0, help="spread of per-camera colour transforms")
    synth.add_argument("--occluded-views", type=float, default=0.0, help="fraction of views with an occluding bar")
    synth.add_argument("--split", default="test")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    return {"synth": _synth}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
