"""The ``handlib`` command line."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def _options(args: argparse.Namespace):
    """The refinement options both ``refine`` and ``refine-dataset`` take (see :func:`_method_options`)."""
    from handlib.pipeline.refine import Options

    return Options(
        method=args.method,
        loss=args.loss,
        schedule_scale=args.schedule_scale,
        spp=args.spp,
        cameras=tuple(c for c in args.cameras.split(",") if c) or None,
        mano=args.mano,
    )


def _synth(args: argparse.Namespace) -> int:
    from handlib.data.mismatch import Mismatch
    from handlib.data.realism import Realism
    from handlib.data.synth import SynthSettings, synthesize

    gestures = tuple(name.strip() for name in args.gestures.split(",") if name.strip())
    try:
        settings = SynthSettings(
            cameras=args.cameras,
            gestures=gestures,
            subjects=args.subjects,
            frames=args.frames,
            noise_mm=args.noise_mm,
            seed=args.seed,
            spp=args.spp,
            shrink=args.shrink,
            texture_size=args.texture_size,
            directional_light=args.directional_light,
            colour_response=args.colour_response,
            occluded_views=args.occluded_views,
            split=args.split,
            **({"mismatch": Mismatch(), "realism": Realism()} if args.realistic else {}),
        )
    except ValueError as err:
        print(f"handlib synth: {err}", file=sys.stderr)
        return 2
    out = synthesize(args.out, settings, progress=not args.quiet)
    print(f"wrote {out} (InterHand2.6M layout, split {settings.split}; truth in {out / 'ground_truth'})")
    return 0


def _refine(args: argparse.Namespace) -> int:
    from handlib.data.interhand import InterHandReader, write_mano_annotations
    from handlib.pipeline.refine import InputError, Unit, frame_numbers, refine_unit, write_unit_files

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
            numbers = frame_numbers(args.frames, in_sequence) if args.frame is None else [args.frame]
        except ValueError as err:
            return fail(f"--{err}")
        if not numbers:
            return fail(f"--frames {args.frames!r} selects none of the sequence's frames {in_sequence}.")
    options = _options(args)
    unit = Unit(args.capture, args.seq, args.hand, tuple(numbers))
    try:
        result = refine_unit(reader, unit, options, progress=not args.quiet)
    except InputError as err:
        return fail(str(err))
    write_mano_annotations(
        Path(args.out) / "MANO_NeuralAnnot.json",
        {
            args.capture: {
                number: entry if args.hand == "both" else {args.hand: entry} for number, entry in result.entries.items()
            }
        },
    )
    write_unit_files(args.out, result)
    kept = [f["frame"] for f in result.frames if f["kept_input"]]
    first, best = result.summary["first"], result.summary["best"]
    print(
        f"refined {len(result.entries)} frame(s) of {args.seq} with {args.method}: backprojection "
        f"{first['backprojection']:.2f} -> {best['backprojection']:.2f} levels in {result.summary['seconds']:.0f} s"
        + (
            f"; kept the input annotation of frame(s) {kept} ({result.frames[0]['flag'] or 'see metrics.json'})"
            if kept
            else ""
        )
        + "".join(f"; {note}" for note in result.summary.get("notes", []))
        + f"; wrote {args.out}"
    )
    return 0


def _refine_dataset(args: argparse.Namespace) -> int:
    from handlib.pipeline.dataset import Cluster, Selection, run_dataset

    try:
        captures = tuple(int(c) for c in args.captures.split(",") if c.strip()) or None
        selection = Selection(captures, args.seq, args.hand, args.frames, args.chunk, joint=not args.separate)
        options = _options(args)
        report = run_dataset(
            args.data,
            args.split,
            args.out,
            selection,
            options,
            Cluster(
                args.scheduler,
                args.workers,
                args.gpus,
                args.threads,
                args.dashboard,
                args.tls_ca_file,
                args.tls_cert,
                args.tls_key,
            ),
            args.retry_failed,
            command=args.command_line,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"handlib refine-dataset: {err}", file=sys.stderr)
        return 2
    if not args.no_report:
        from handlib.pipeline.report import write_report

        try:
            print(f"refine-dataset: report at {write_report(args.out)}")
        except Exception as err:  # the dataset is written; the report can be made again from it
            print(f"refine-dataset: the report failed ({type(err).__name__}: {err}); run: handlib report {args.out}")
    return 0 if not report.failed else 1  # failures are listed above and in refinement/summary.csv


def _report(args: argparse.Namespace) -> int:
    from handlib.pipeline.report import ReportSettings, write_report

    try:
        page = write_report(args.out, ReportSettings(shown=args.shown, data=args.data))
    except (ValueError, FileNotFoundError) as err:
        print(f"handlib report: {err}", file=sys.stderr)
        return 2
    print(f"handlib report: wrote {page}")
    return 0


def _source_options() -> argparse.ArgumentParser:
    """Where the input is: an InterHand2.6M-layout directory and its split."""
    group = argparse.ArgumentParser(add_help=False)
    group.add_argument("--data", required=True, help="an InterHand2.6M-layout directory (real or synthetic)")
    group.add_argument("--split", default="test")
    return group


def _method_options() -> argparse.ArgumentParser:
    """How to refine: method, error, schedule length, samples, cameras, hand model."""
    group = argparse.ArgumentParser(add_help=False)
    group.add_argument(
        "--method",
        default="smvr",
        choices=["smvr", "dmvr"],
        help="smvr: each frame alone; dmvr: the frames as a video (refine-dataset: a task per sequence or --chunk)",
    )
    group.add_argument("--loss", default="occlusion_aware", choices=["occlusion_aware", "mae"], help="SMVR's f1")
    group.add_argument(
        "--schedule-scale", type=float, default=1.0, help="scale the method's schedule (SMVR 230 iterations, DMVR 100)"
    )
    group.add_argument("--spp", type=int, default=4, help="samples per pixel")
    group.add_argument("--cameras", default="", help="comma-separated camera ids (default: all with images)")
    group.add_argument("--frames", default="", help="frame numbers and first:last ranges (default: all)")
    group.add_argument("--mano", default=None, help="directory or file of a licensed MANO model (default: open hand)")
    return group


def _synth_parser(commands) -> None:
    synth = commands.add_parser("synth", help="write a synthetic InterHand2.6M-like capture with ground truth")
    synth.add_argument("--out", required=True, help="output directory")
    synth.add_argument("--cameras", type=int, default=8)
    synth.add_argument(
        "--gestures",
        default="open,fist",
        help="comma-separated: open, relaxed, point, thumbs_up, peace, three, horns, ok, fist",
    )
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
    synth.add_argument(
        "--realistic",
        action="store_true",
        help="the realistic benchmark: a true hand outside the model's span (palmar arch, finger proportions, "
        "smoother surface) and a camera's noise, defocus, JPEG, calibration error and clutter (default: ideal)",
    )
    synth.add_argument("--quiet", action="store_true", help="no progress bar")


def _refine_parser(commands) -> None:
    refine = commands.add_parser(
        "refine",
        parents=[_source_options(), _method_options()],
        help="refine a frame (SMVR) or a sequence (DMVR) of MANO annotations",
    )
    refine.add_argument("--capture", type=int, required=True)
    refine.add_argument("--seq", required=True)
    refine.add_argument("--frame", type=int, default=None, help="one frame number (SMVR, or DMVR on one frame)")
    refine.add_argument(
        "--hand",
        default="right",
        choices=["right", "left", "both"],
        help="both: the two hands refined together (SMVR: the frame; DMVR: the video, one light); a hand missing "
        "or refused in a frame is left out",
    )
    refine.add_argument("--out", required=True, help="output directory")
    refine.add_argument("--quiet", action="store_true", help="no progress bar")


def _refine_dataset_parser(commands) -> None:
    batch = commands.add_parser(
        "refine-dataset",
        parents=[_source_options(), _method_options()],
        help="refine every selected sequence of a split on Dask, resumably; writes a refined dataset in "
        "the InterHand2.6M layout (exit status 1 if a task failed)",
    )
    batch.add_argument("--out", required=True, help="output dataset (and its ledger: rerun to resume)")
    batch.add_argument("--captures", default="", help="comma-separated capture numbers (default: all)")
    batch.add_argument("--seq", default="*", help="sequence-name pattern, shell style (default: all)")
    batch.add_argument("--hand", default="right", choices=["right", "left", "both"])
    batch.add_argument(
        "--separate",
        action="store_true",
        help="with --hand both: refine each hand alone, the other as background (default: the two hands "
        "together where both are annotated: a frame with SMVR, a video with DMVR)",
    )
    batch.add_argument("--chunk", type=int, default=0, help="DMVR: at most this many frames per task (0: sequence)")
    batch.add_argument(
        "--scheduler", default=None, help="address of a running Dask scheduler (default: a local cluster)"
    )
    batch.add_argument("--workers", type=int, default=0, help="local worker processes (default: GPUs, else cores)")
    batch.add_argument("--gpus", type=int, default=0, help="local GPUs: one worker each, tasks need a GPU")
    batch.add_argument("--threads", type=int, default=0, help="threads per task (default: cores / workers)")
    batch.add_argument(
        "--dashboard",
        default="127.0.0.1:0",
        help="local cluster's dashboard address, host:port (default: loopback, a free port)",
    )
    batch.add_argument("--tls-ca-file", default=None, help="with a tls:// --scheduler: the CA certificate (PEM)")
    batch.add_argument("--tls-cert", default=None, help="with a tls:// --scheduler: this client's certificate")
    batch.add_argument("--tls-key", default=None, help="with a tls:// --scheduler: this client's private key")
    batch.add_argument("--retry-failed", action="store_true", help="run again the tasks the ledger holds as failed")
    batch.add_argument("--no-report", action="store_true", help="do not write OUT/report/index.html at the end")


def _report_parser(commands) -> None:
    report = commands.add_parser(
        "report",
        help="write OUT/report/index.html: what a refine-dataset run changed, per sequence, camera and frame "
        "(works on a partial run too)",
    )
    report.add_argument("out", help="the --out folder of a refine-dataset run")
    report.add_argument("--shown", type=int, default=5, help="worst and best frames shown with overlays (default 5)")
    report.add_argument("--data", default=None, help="the input dataset, if it has moved since the run")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="handlib", description="Refine 3D hand annotations by render-and-compare.")
    commands = parser.add_subparsers(dest="command", required=True)
    _synth_parser(commands)
    _refine_parser(commands)
    _refine_dataset_parser(commands)
    _report_parser(commands)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["handlib", *argv])
    commands = {"synth": _synth, "refine": _refine, "refine-dataset": _refine_dataset, "report": _report}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
