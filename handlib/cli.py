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


def _refine(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import cv2
    import numpy as np
    import torch

    from handlib.hand import HandModel
    from handlib.interhand import InterHandReader, mano_entry, write_mano_annotations
    from handlib.schedule import SMVR_SCHEDULE, scaled
    from handlib.smvr import SMVRSettings, refine_frame

    reader = InterHandReader(args.data, args.split)
    key = (args.capture, args.seq, args.frame)
    if key not in reader.keys():
        print(f"handlib refine: no frame {key} in {args.data} (split {args.split}).", file=sys.stderr)
        return 2
    frame = reader.frame(key)
    if frame is None or frame.mano.get(args.hand) is None:
        reasons = [reason for k, reason in reader.skipped if k[:3] == key]
        print(f"handlib refine: frame {key} has no usable {args.hand} hand. {' '.join(reasons)}", file=sys.stderr)
        return 2
    names = [c for c in (args.cameras.split(",") if args.cameras else sorted(frame.image_paths)) if c]
    missing = [c for c in names if c not in frame.image_paths]
    if missing:
        print(f"handlib refine: no image for camera(s) {missing} in frame {key}.", file=sys.stderr)
        return 2
    model = HandModel(args.hand, model_path=args.mano)
    offset = 0 if args.hand == "right" else 21
    joints = valid = None
    if frame.joints is not None:
        joints = torch.tensor(frame.joints[offset:offset + 21])
        valid = torch.tensor(frame.joint_valid[offset:offset + 21])
    settings = SMVRSettings(loss=args.loss, schedule=scaled(SMVR_SCHEDULE, args.schedule_scale), spp=args.spp)
    result = refine_frame(model, [frame.cameras[c] for c in names], [frame.image(c) for c in names],
                          frame.hand_params(args.hand), joints, valid, settings, progress=not args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_mano_annotations(out / "MANO_NeuralAnnot.json",
                           {args.capture: {args.frame: {args.hand: mano_entry(result.params)}}})
    # The colour map holds intensities as the images store them (sRGB-encoded): no conversion.
    colour_map = (result.texture.numpy() * 255.0 + 0.5).astype(np.uint8)
    cv2.imwrite(str(out / "colour_map.png"), cv2.cvtColor(colour_map, cv2.COLOR_RGB2BGR))
    summary = {"frame": list(key), "cameras": names, "method": args.method, "diverged": result.diverged,
               "best_iteration": result.best_iteration, "seconds": result.seconds,
               "first": result.history[0], "last": result.history[-1]}
    (out / "metrics.json").write_text(json.dumps({**summary, "history": result.history}, indent=1))
    print(f"refined {key}: backprojection {summary['first']['backprojection']:.2f} -> "
          f"{summary['last']['backprojection']:.2f} levels in {result.seconds:.0f} s; wrote {out}")
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
    refine = commands.add_parser("refine", help="refine one frame's MANO annotation (SMVR)")
    refine.add_argument("--data", required=True, help="an InterHand2.6M-layout directory (real or synthetic)")
    refine.add_argument("--split", default="test")
    refine.add_argument("--capture", type=int, required=True)
    refine.add_argument("--seq", required=True)
    refine.add_argument("--frame", type=int, required=True)
    refine.add_argument("--hand", default="right", choices=["right", "left"])
    refine.add_argument("--cameras", default="", help="comma-separated camera ids (default: all with images)")
    refine.add_argument("--method", default="smvr", choices=["smvr"])
    refine.add_argument("--loss", default="occlusion_aware", choices=["occlusion_aware", "mae"])
    refine.add_argument("--schedule-scale", type=float, default=1.0, help="scale the 230-iteration schedule")
    refine.add_argument("--spp", type=int, default=4)
    refine.add_argument("--mano", default=None, help="directory or file of a licensed MANO model (default: open hand)")
    refine.add_argument("--out", required=True)
    refine.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    return {"synth": _synth, "refine": _refine}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
