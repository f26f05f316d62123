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


def _frame_numbers(spec: str, available: list[int]) -> list[int]:
    """``--frames``: comma-separated numbers and ``first:last`` ranges (inclusive) of the sequence's frames."""
    if not spec:
        return available
    chosen = set()
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if ":" in part:
            low, high = (int(v) if v else None for v in part.split(":", 1))
            chosen |= {f for f in available if (low is None or f >= low) and (high is None or f <= high)}
        else:
            chosen.add(int(part))
    return sorted(chosen)


def _refine(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import cv2
    import numpy as np
    import torch

    from handlib.hand import HandModel
    from handlib.interhand import InterHandReader, mano_entry, write_mano_annotations
    from handlib.schedule import DMVR_SCHEDULE, SMVR_SCHEDULE, scaled

    def fail(message: str) -> int:
        print(f"handlib refine: {message}", file=sys.stderr)
        return 2

    reader = InterHandReader(args.data, args.split)
    in_sequence = sorted(k[2] for k in reader.keys() if k[:2] == (args.capture, args.seq))
    if not in_sequence:
        return fail(f"no sequence {args.seq!r} in capture {args.capture} of {args.data} (split {args.split}).")
    if args.method == "smvr":
        if args.frame is None:
            return fail("--method smvr refines one frame: give --frame.")
        numbers = [args.frame]
    else:
        try:
            numbers = _frame_numbers(args.frames, in_sequence) if args.frame is None else [args.frame]
        except ValueError:
            return fail(f"--frames {args.frames!r}: use numbers and first:last ranges, e.g. 10,12,20:40.")
    frames = []
    for number in numbers:
        key = (args.capture, args.seq, number)
        if key not in reader.keys():
            return fail(f"no frame {key} in {args.data} (split {args.split}).")
        frame = reader.frame(key)
        if frame is None or frame.mano.get(args.hand) is None:
            reasons = [reason for k, reason in reader.skipped if k[:3] == key]
            return fail(f"frame {key} has no usable {args.hand} hand. {' '.join(reasons)}")
        frames.append(frame)
    common = set.intersection(*(set(f.image_paths) for f in frames))
    names = [c for c in (args.cameras.split(",") if args.cameras else sorted(common)) if c]
    missing = [c for c in names if c not in common]
    if missing:
        return fail(f"no image for camera(s) {missing} in every selected frame.")
    model = HandModel(args.hand, model_path=args.mano)
    cameras = [frames[0].cameras[c] for c in names]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.method == "smvr":
        from handlib.smvr import SMVRSettings, refine_frame

        frame = frames[0]
        offset = 0 if args.hand == "right" else 21
        joints = valid = None
        if frame.joints is not None:
            joints = torch.tensor(frame.joints[offset:offset + 21])
            valid = torch.tensor(frame.joint_valid[offset:offset + 21])
        settings = SMVRSettings(loss=args.loss, schedule=scaled(SMVR_SCHEDULE, args.schedule_scale), spp=args.spp)
        result = refine_frame(model, cameras, [frame.image(c) for c in names], frame.hand_params(args.hand), joints,
                              valid, settings, progress=not args.quiet)
        refined = {frame.frame: result.params}
        # The colour map holds intensities as the images store them (sRGB-encoded): no conversion.
        texture, texture_name = (result.texture.numpy() * 255.0 + 0.5).astype(np.uint8), "colour_map.png"
    else:
        from handlib.dmvr import DMVRSettings, refine_sequence
        from handlib.texture import to_srgb8

        settings = DMVRSettings(schedule=scaled(DMVR_SCHEDULE, args.schedule_scale), spp=args.spp)
        result = refine_sequence(model, cameras, [[f.image(c) for c in names] for f in frames],
                                 [f.hand_params(args.hand) for f in frames], [f.frame for f in frames], settings,
                                 progress=not args.quiet)
        refined = {f.frame: p for f, p in zip(frames, result.params)}
        texture, texture_name = to_srgb8(result.texture.numpy()), "texture.png"
        (out / "environment.json").write_text(json.dumps({"sh_coefficients": result.light.tolist(),
                                                          "convention": "real SH, bands^2 x RGB, world frame"}))
    write_mano_annotations(out / "MANO_NeuralAnnot.json",
                           {args.capture: {number: {args.hand: mano_entry(p)} for number, p in refined.items()}})
    cv2.imwrite(str(out / texture_name), cv2.cvtColor(texture, cv2.COLOR_RGB2BGR))
    summary = {"capture": args.capture, "seq": args.seq, "frames": list(refined), "cameras": names,
               "method": args.method, "diverged": result.diverged, "best_iteration": result.best_iteration,
               "seconds": result.seconds, "first": result.history[0], "last": result.history[-1]}
    (out / "metrics.json").write_text(json.dumps({**summary, "history": result.history}, indent=1))
    print(f"refined {len(refined)} frame(s) of {args.seq} with {args.method}: backprojection "
          f"{summary['first']['backprojection']:.2f} -> {summary['last']['backprojection']:.2f} levels in "
          f"{result.seconds:.0f} s; wrote {out}")
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
    refine = commands.add_parser("refine", help="refine a frame (SMVR) or a sequence (DMVR) of MANO annotations")
    refine.add_argument("--data", required=True, help="an InterHand2.6M-layout directory (real or synthetic)")
    refine.add_argument("--split", default="test")
    refine.add_argument("--capture", type=int, required=True)
    refine.add_argument("--seq", required=True)
    refine.add_argument("--frame", type=int, default=None, help="one frame number (SMVR, or DMVR on one frame)")
    refine.add_argument("--frames", default="", help="DMVR: frame numbers and first:last ranges (default: all)")
    refine.add_argument("--hand", default="right", choices=["right", "left"])
    refine.add_argument("--cameras", default="", help="comma-separated camera ids (default: all with images)")
    refine.add_argument("--method", default="smvr", choices=["smvr", "dmvr"])
    refine.add_argument("--loss", default="occlusion_aware", choices=["occlusion_aware", "mae"])
    refine.add_argument("--schedule-scale", type=float, default=1.0,
                        help="scale the method's schedule (SMVR 230 iterations, DMVR 100)")
    refine.add_argument("--spp", type=int, default=4)
    refine.add_argument("--mano", default=None, help="directory or file of a licensed MANO model (default: open hand)")
    refine.add_argument("--out", required=True)
    refine.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    return {"synth": _synth, "refine": _refine}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
