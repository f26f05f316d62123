"""An instrument for one refinement, in JupyterLab: choose what to refine, run it in the background
of the kernel (stoppable), then scrub its iterations with a slider that redraws the 3D view, every
camera's outlines and the loss curves.

``Explorer(data)`` opens an InterHand2.6M-layout folder (a ``refine-dataset`` output is one), or
with ``data=None`` a synthetic capture made on the spot (with ground truth, so eps_v is shown).
``explorer.panel`` is the widget panel; ``run(wait=True)`` refines synchronously (papermill, the
book), after which :meth:`figure_3d`, :meth:`overlay_png` and :meth:`curves_figure` give static
figures. Each iteration's parameters are kept (a few hundred floats), its meshes computed only when
shown.
"""

from __future__ import annotations

import html
import io
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from handlib.data.interhand import InterHandReader
from handlib.data.synth import SynthSettings, read_truths, synthesize
from handlib.geometry.outline import outline_overlay
from handlib.model.hand import HandModel, HandParams, Truth
from handlib.pipeline.refine import Options, Unit, UnitResult, refine_unit

#: Per profile: cameras used by default, the fraction of the papers' schedule, the image shrink
#: of the synthetic capture (InterHand2.6M's 334x512 divided by it).
PROFILES = {
    "smoke": dict(cameras=3, schedule=0.05, shrink=4),
    "quick": dict(cameras=3, schedule=0.2, shrink=2),
    "paper": dict(cameras=32, schedule=1.0, shrink=1),
}
#: RGB of each hand drawn: the input annotation, the iteration shown, the ground truth.
COLOURS = {"initial": (230, 25, 75), "current": (0, 130, 200), "truth": (60, 180, 75)}
#: DMVR refines the chosen frame with up to this many neighbours on each side, as a video.
DMVR_NEIGHBOURS = 1


@dataclass
class Step:
    """One iteration as the refinement saw it: its history record and HandParams per frame."""

    record: dict
    params: list[HandParams]


def synthetic_capture(profile: str, folder: Path | None = None) -> Path:
    """A small synthetic capture (6 cameras, the 'horns' gesture, 5 mm of noise), with ground truth."""
    scale = PROFILES[profile]
    folder = Path(folder or tempfile.mkdtemp(prefix="handlib-explore-"))
    return synthesize(
        folder / "capture",
        SynthSettings(
            cameras=max(6, scale["cameras"]),
            gestures=("horns", "open"),
            frames=3,
            noise_mm=5.0,
            seed=12,
            spp=16,
            texture_size=512,
            shrink=scale["shrink"],
        ),
        progress=False,
    )


def shaded_faces(vertices: np.ndarray, faces: np.ndarray, colour, light=(0.3, -0.5, -0.8)) -> np.ndarray:
    """RGBA per face: ``colour`` (RGB 0-255) under a headlight-like directional light (two-sided)."""
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    direction = np.asarray(light, float) / np.linalg.norm(light)
    shade = 0.35 + 0.65 * np.abs(normals @ direction)
    rgb = np.clip(np.asarray(colour, float)[None] / 255.0 * shade[:, None], 0, 1)
    return np.concatenate([rgb, np.full((len(rgb), 1), 0.55)], axis=1)


def view_png(meshes: dict[str, np.ndarray], faces: np.ndarray, size: int = 360) -> bytes:
    """The meshes ((V, 3) mm) in one 3D view, each in its colour of :data:`COLOURS`, as PNG."""
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    figure = Figure(figsize=(size / 90, size / 90), dpi=90)
    axes = figure.add_subplot(projection="3d")
    # one collection, so that the faces of all meshes are depth-sorted together
    polygons = np.concatenate([v[faces] for v in meshes.values()])
    colours = np.concatenate([shaded_faces(v, faces, COLOURS[name]) for name, v in meshes.items()])
    axes.add_collection3d(Poly3DCollection(polygons, facecolors=colours))
    points = np.concatenate(list(meshes.values()))
    centre, radius = points.mean(0), 0.7 * np.abs(points - points.mean(0)).max()
    for axis, c in zip("xyz", centre):
        getattr(axes, f"set_{axis}lim")(c - radius, c + radius)
    axes.set_box_aspect((1, 1, 1))
    axes.view_init(elev=-60, azim=-90)
    axes.set_axis_off()
    for k, name in enumerate(meshes):
        figure.text(0.02, 0.95 - 0.05 * k, name, color=np.asarray(COLOURS[name]) / 255.0, fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def curves_png(history: list[dict], iteration: int, size=(520, 260)) -> bytes:
    """Energy, backprojection error and (with a truth) eps_v over the iterations, a line at ``iteration``."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(size[0] / 90, size[1] / 90), dpi=90)
    axes = figure.add_subplot()
    its = [r["iteration"] for r in history]
    for key in ("E", "backprojection", "eps_v"):
        values = [r.get(key) for r in history]
        if values and all(v is not None for v in values):
            axes.plot(its, values, label=key, linewidth=1.2)
    axes.axvline(iteration, color="black", linewidth=1, linestyle="--")
    axes.set_yscale("log")
    axes.set_xlabel("iteration", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


class Explorer:
    """The widget panel and the refinement it runs (see the module's docstring)."""

    def __init__(self, data: str | Path | None = None, split: str = "test", profile: str = "quick"):
        import ipywidgets as w

        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}.")
        self.profile = profile
        self.data = Path(data) if data else synthetic_capture(profile)
        self.reader = InterHandReader(self.data, split)
        if not len(self.reader):
            raise ValueError(f"{self.data} (split {split}) has no frames to explore.")
        has_truth = (self.data / "ground_truth" / "scene.json").is_file()
        self.truth = read_truths(self.data) if has_truth else None
        self.steps: list[Step] = []
        self.result: UnitResult | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._models: dict[str, HandModel] = {}
        self.unit: Unit | None = None  # what the last run refined: its frames, the one shown, the cameras
        self.shown_frame: int | None = None
        self.shown = None  # its Frame (calibration, images, input annotation)
        self.shown_cameras: tuple[str, ...] = ()
        self.truths: list[Truth] | None = None  # per frame of the unit, when the capture has a truth

        style = {"description_width": "80px"}
        self.capture = w.Dropdown(description="capture", style=style)
        self.seq = w.Dropdown(description="sequence", style=style)
        self.frame = w.Dropdown(description="frame", style=style)
        self.hand = w.ToggleButtons(options=["right", "left"], description="hand", style=style)
        self.cameras = w.SelectMultiple(description="cameras", rows=4, style=style)
        self.method = w.ToggleButtons(options=["smvr", "dmvr"], description="method", style=style)
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.progress = w.IntProgress(min=0, max=1, description="iterations", style=style)
        self.status = w.HTML("Choose a frame and press Run.")
        self.iteration = w.IntSlider(
            min=0, max=0, description="iteration", disabled=True, continuous_update=False, style=style
        )
        self.view = w.Image(format="png", layout=w.Layout(width="360px"))
        self.overlays = w.Image(format="png")
        self.curves = w.Image(format="png", layout=w.Layout(width="520px"))
        self.panel = w.VBox(
            [
                w.HBox([w.VBox([self.capture, self.seq, self.frame]), w.VBox([self.hand, self.method, self.cameras])]),
                w.HBox([self.run_button, self.stop_button, self.progress]),
                self.status,
                self.iteration,
                w.HBox([self.view, self.curves]),
                self.overlays,
            ]
        )
        keys = self.reader.keys()
        self.capture.observe(lambda _: self._fill_sequences(), "value")
        self.seq.observe(lambda _: self._fill_frames(), "value")
        self.frame.observe(lambda _: self._fill_cameras(), "value")
        _offer(self.capture, sorted({k[0] for k in keys}))
        self._fill_sequences()
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.iteration.observe(lambda change: self.show(change["new"]), "value")

    # --- choosing ---------------------------------------------------------------------------
    def _fill_sequences(self) -> None:
        _offer(self.seq, sorted({k[1] for k in self.reader.keys() if k[0] == self.capture.value}))
        self._fill_frames()

    def _fill_frames(self) -> None:
        _offer(self.frame, self._sequence_frames())
        self._fill_cameras()

    def _sequence_frames(self) -> list[int]:
        return sorted(k[2] for k in self.reader.keys() if k[:2] == (self.capture.value, self.seq.value))

    def _fill_cameras(self) -> None:
        if self.frame.value is None:
            return
        chosen = self.reader.frame((self.capture.value, self.seq.value, self.frame.value))
        names = sorted(chosen.image_paths) if chosen else []
        self.cameras.options = names
        self.cameras.value = tuple(names[: PROFILES[self.profile]["cameras"]])

    def select(self, capture=None, seq=None, frame=None, hand=None, cameras=0, method=None) -> None:
        """Set the choices as the widgets would (None, 0 or '': keep the widget's default)."""
        if capture is not None:
            self.capture.value = capture
        if seq:
            self.seq.value = seq
        if frame is not None and frame >= 0:
            self.frame.value = frame
        if hand:
            self.hand.value = hand
        if cameras:
            self.cameras.value = tuple(self.cameras.options[:cameras])
        if method:
            self.method.value = method

    def chosen_unit(self) -> Unit:
        frames = [self.frame.value]
        if self.method.value == "dmvr":
            available = self._sequence_frames()
            at = available.index(self.frame.value)
            frames = available[max(0, at - DMVR_NEIGHBOURS) : at + DMVR_NEIGHBOURS + 1]
        return Unit(self.capture.value, self.seq.value, self.hand.value, tuple(frames))

    # --- running ----------------------------------------------------------------------------
    def run(self, wait: bool = False) -> None:
        """Refine the chosen frame (DMVR: with its neighbours) in a background thread; ``wait``
        joins it (and raises what it raised)."""
        if self._thread is not None and self._thread.is_alive():
            self.status.value = "A refinement is running: stop it first."
            return
        self.unit = self.chosen_unit()
        if not self.cameras.value:
            raise ValueError("Choose at least one camera.")
        options = Options(
            method=self.method.value,
            schedule_scale=PROFILES[self.profile]["schedule"],
            cameras=tuple(self.cameras.value),
        )
        self.steps, self.result, self.error = [], None, None
        self.shown_frame, self.shown_cameras = self.frame.value, tuple(self.cameras.value)
        self.shown = self.reader.frame((self.unit.capture, self.unit.seq, self.shown_frame))
        self.truths = self._truths()
        self._stop.clear()
        total = sum(s.iterations for s in options.schedule)
        self.progress.max, self.progress.value = total, 0
        self.iteration.disabled, self.run_button.disabled, self.stop_button.disabled = True, True, False
        self.status.value = f"Refining {html.escape(self.unit.key)} with {options.method.upper()} ..."
        self._thread = threading.Thread(target=self._work, args=(options,), daemon=True)
        self._thread.start()
        if wait:
            self.wait()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self.error:
            raise RuntimeError(self.error)

    def stop(self) -> None:
        """Ask the running refinement to stop after its current iteration (it keeps its best state)."""
        self._stop.set()

    def _truths(self) -> list[Truth] | None:
        if self.truth is None:
            return None
        found = [self.truth.get((self.unit.capture, f, self.unit.hand)) for f in self.unit.frames]
        return None if any(t is None for t in found) else found

    def _watch(self, record: dict, params: list[HandParams]) -> bool:
        self.steps.append(Step(record, params))
        self.progress.value = len(self.steps)
        if len(self.steps) % 5 == 1:
            eps = f", eps_v {record['eps_v']:.2f} mm" if "eps_v" in record else ""
            self.status.value = f"iteration {record['iteration']}: backprojection {record['backprojection']:.2f}{eps}"
        return self._stop.is_set()

    def _work(self, options: Options) -> None:
        try:
            self.result = refine_unit(self.reader, self.unit, options, truth=self.truths, watch=self._watch)
            best = self.result.summary["best_iteration"]
            stopped = " (stopped)" if self._stop.is_set() else ""
            self.status.value = (
                f"Done{stopped}: {len(self.steps)} iterations in {self.result.summary['seconds']:.0f} s, best at "
                f"{best}. Move the slider to see any iteration."
            )
        except Exception as err:  # shown in the panel; wait() raises it
            self.error = f"{type(err).__name__}: {err}"
            self.status.value = f"<b>Failed</b>: {html.escape(self.error)}"
            return
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True
        if self.steps:
            self.iteration.max = len(self.steps) - 1
            self.iteration.disabled = False
            target = min(self.result.summary["best_iteration"], len(self.steps) - 1)
            if self.iteration.value == target:
                self.show(target)
            self.iteration.value = target

    # --- showing ----------------------------------------------------------------------------
    def model(self) -> HandModel:
        hand = self.unit.hand
        return self._models.get(hand) or self._models.setdefault(hand, HandModel(hand))

    def meshes(self, iteration: int) -> dict[str, np.ndarray]:
        """(V, 3) mm vertices of the shown frame: input, the iteration's estimate, truth if known."""
        at = self.unit.frames.index(self.shown_frame)
        params = {"initial": self.shown.hand_params(self.unit.hand), "current": self.steps[iteration].params[at]}
        with torch.no_grad():
            meshes = {name: self.model()(p).vertices[0].numpy() for name, p in params.items()}
        if self.truths:
            meshes["truth"] = self.truths[at].vertices.numpy()
        return meshes

    def overlay_png(self, iteration: int, height: int = 200, meshes: dict | None = None) -> bytes:
        """Every chosen camera's image with the outlines of :meth:`meshes` (at ``iteration``, unless
        given), side by side, as PNG."""
        import cv2

        chosen = self.shown
        meshes = self.meshes(iteration) if meshes is None else meshes
        faces = self.model().faces.numpy()
        tiles = []
        for camera in self.shown_cameras:
            tile = outline_overlay(
                chosen.image(camera),
                chosen.cameras[camera],
                [(v, COLOURS[n], 2) for n, v in meshes.items()],
                faces,
                upscale=6,
                crop_margin=6,
            )
            tile = cv2.resize(
                tile, (round(tile.shape[1] * height / tile.shape[0]), height), interpolation=cv2.INTER_AREA
            )
            tiles.append(np.pad(tile, ((0, 0), (0, 6), (0, 0)), constant_values=255))
        ok, png = cv2.imencode(".png", cv2.cvtColor(np.concatenate(tiles, 1), cv2.COLOR_RGB2BGR))
        return png.tobytes()

    def show(self, iteration: int) -> None:
        """Redraw the 3D view, the overlays and the curves at ``iteration``."""
        if not self.steps:
            return
        iteration = int(np.clip(iteration, 0, len(self.steps) - 1))
        meshes = self.meshes(iteration)
        self.view.value = view_png(meshes, self.model().faces.numpy())
        self.overlays.value = self.overlay_png(iteration, meshes=meshes)
        self.curves.value = curves_png([s.record for s in self.steps], iteration)

    def figure_3d(self, iteration: int | None = None):
        """A plotly figure of :meth:`meshes` (rotatable; the book shows it), by default at the best iteration."""
        import plotly.graph_objects as go

        if iteration is None:
            iteration = self.result.summary["best_iteration"]
        meshes = self.meshes(min(iteration, len(self.steps) - 1))
        faces = self.model().faces.numpy()
        figure = go.Figure(
            [
                go.Mesh3d(
                    x=v[:, 0],
                    y=v[:, 1],
                    z=v[:, 2],
                    i=faces[:, 0],
                    j=faces[:, 1],
                    k=faces[:, 2],
                    name=name,
                    color="rgb{}".format(COLOURS[name]),
                    opacity=0.45 if name != "truth" else 0.3,
                    showlegend=True,
                )
                for name, v in meshes.items()
            ]
        )
        figure.update_layout(
            scene=dict(aspectmode="data", xaxis_title="x (mm)", yaxis_title="y (mm)", zaxis_title="z (mm)")
        )
        return figure

    def curves_figure(self):
        """The history's curves as a plotly figure (the book shows it)."""
        import plotly.graph_objects as go

        history = [s.record for s in self.steps]
        keys = [k for k in ("E", "backprojection", "eps_v", "eps_j") if history and all(k in r for r in history)]
        figure = go.Figure(
            [
                go.Scatter(x=[r["iteration"] for r in history], y=[r[k] for r in history], name=k, mode="lines")
                for k in keys
            ]
        )
        figure.update_layout(xaxis_title="iteration", yaxis_type="log")
        return figure


def _offer(widget, options: list) -> None:
    """New options for a dropdown, the first chosen."""
    widget.options = options
    widget.value = options[0] if options else None
