"""Train panel: pick a dataset and a few options, start `sgxl train` as its own process, watch it, stop it.

Everything slow happens elsewhere: training runs in a child process (explorer/training_run.py) and
the panel only reads the run directory, at most every POLL_S seconds, appending what is new to
the plots. Stop sends SIGINT (the trainer finishes its step and writes a final snapshot); each
snapshot has an "Open" button that loads it into the explorer. Attach follows a run directory
that another explorer (or `sgxl train` in a terminal) started; Resume continues a stopped run.

The sample grid lives in a *static* texture: it changes once per snapshot, and unlike a raw
texture a static one is uploaded once, not every frame. It exists only while a sample is shown.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

from core.errors import SGXLError, UserInputError
from core.networks.presets import PRESETS
from explorer.panels.base import Panel
from explorer.training_run import (
    DatasetInfo,
    RunFollower,
    TrainProcess,
    TrainRequest,
    check_dataset,
    format_seconds,
    probe_feature_networks,
)

POLL_S = 0.5
DEVICES = ["auto", "cpu", "cuda"]
SAMPLE_MAX = (390, 220)  # px the sample grid may take in the panel
ERROR_COLOUR = (255, 110, 100)
OK_COLOUR = (160, 220, 160)
TEXT_COLOUR = (200, 200, 200)
DIM_COLOUR = (150, 150, 150)
NUM_W = 90  # width of the numeric fields


class TrainPanel(Panel):
    key = "train"
    title = "Train"
    default_open = False

    def __init__(self, app) -> None:
        super().__init__(app)
        self.dataset: DatasetInfo | None = None
        self.follower: RunFollower | None = None
        self.proc: TrainProcess | None = None
        self.status_text = ""
        self.status_error = False
        self._next_poll = 0.0
        self._shown_version = -1
        self._exit_seen = False
        self._snapshot_paths: tuple[str, ...] = ()
        self._sample_path: Path | None = None
        self._sample_mtime = 0.0
        self._texture: int | str | None = None
        self._sample_shape: tuple[int, int] | None = None
        self._features_text: str | None = None
        self._features_started = False
        self.shown_running = False

    # ------------------------------------------------------------------ UI
    def build_root(self) -> None:
        def dialog(name: str, label: str, directory: bool, extensions: tuple[str, ...] = ()) -> None:
            with dpg.file_dialog(label=label, tag=self.tag(f"dialog.{name}"), show=False, modal=True, width=700,
                                 height=420, default_filename="", directory_selector=directory,
                                 callback=self._on_dialog, user_data=name):
                for ext in extensions:
                    dpg.add_file_extension(ext)

        dialog("data_folder", "Dataset folder (one sub-folder per class, or a folder made by `sgxl dataset`)", True)
        dialog("data_zip", "Dataset zip (made by `sgxl dataset`)", False, (".zip", ".*"))
        dialog("grow_from", "Snapshot of the previous resolution stage", False, (".sgxl", ".*"))
        dialog("run_dir", "Run directory", True)
        with dpg.theme(tag=self.tag("series_theme")):  # markers: a curve of one tick is a dot, not nothing
            with dpg.theme_component(dpg.mvLineSeries):
                dpg.add_theme_style(dpg.mvPlotStyleVar_Marker, dpg.mvPlotMarker_Circle, category=dpg.mvThemeCat_Plots)
                dpg.add_theme_style(dpg.mvPlotStyleVar_MarkerSize, 2.5, category=dpg.mvThemeCat_Plots)
            with dpg.theme_component(dpg.mvPlot):  # fitted curves keep off the frame's edges
                dpg.add_theme_style(dpg.mvPlotStyleVar_FitPadding, 0.02, 0.1, category=dpg.mvThemeCat_Plots)

    def build(self) -> None:
        t = self.tag
        dpg.add_text("Dataset (folder or zip):", color=DIM_COLOUR)
        dpg.add_input_text(tag=t("data"), hint="path of a dataset folder or zip", width=-1, on_enter=True,
                           callback=self._on_check)
        with dpg.group(horizontal=True):
            dpg.add_button(label="Folder...", tag=t("data_folder"), callback=self._on_browse, user_data="data_folder")
            dpg.add_button(label="Zip...", tag=t("data_zip"), callback=self._on_browse, user_data="data_zip")
            dpg.add_button(label="Check", tag=t("check"), callback=self._on_check)
        dpg.add_text("no dataset chosen", tag=t("data_info"), wrap=390, color=DIM_COLOUR)

        with dpg.group(horizontal=True):
            dpg.add_combo(list(PRESETS), tag=t("preset"), default_value="tiny", width=NUM_W, label="preset")
            dpg.add_combo(DEVICES, tag=t("device"), default_value=self.app.device, width=NUM_W, label="device")
        with dpg.group(horizontal=True):
            dpg.add_input_text(tag=t("grow_from"), hint="grow from: last stage's snapshot (optional)",
                               width=330)
            dpg.add_button(label="...", tag=t("grow_browse"), callback=self._on_browse, user_data="grow_from")
        dpg.add_checkbox(label="keep its discriminator (not a fresh one)", tag=t("keep_d"))
        with dpg.group(horizontal=True):
            dpg.add_input_int(tag=t("batch"), default_value=16, min_value=1, min_clamped=True, step=0, width=NUM_W,
                              label="batch")
            dpg.add_input_float(tag=t("kimg"), default_value=10.0, min_value=0.0, min_clamped=True, step=0,
                                format="%.3f", width=NUM_W, label="kimg")
        with dpg.group(horizontal=True):
            dpg.add_input_float(tag=t("snap"), default_value=1.0, min_value=0.0, min_clamped=True, step=0,
                                format="%.3f", width=NUM_W, label="snap   ")
            dpg.add_input_float(tag=t("tick"), default_value=0.1, min_value=0.0, min_clamped=True, step=0,
                                format="%.3f", width=NUM_W, label="log every (kimg)")
        with dpg.group(horizontal=True):
            dpg.add_input_float(tag=t("cls_weight"), default_value=0.0, min_value=0.0, min_clamped=True, step=0,
                                format="%.2f", width=NUM_W, label="cls w ")
            dpg.add_input_int(tag=t("d_input"), default_value=224, min_value=64, min_clamped=True, step=0,
                              width=NUM_W, label="D input size")
        dpg.add_input_float(tag=t("range_weight"), default_value=0.0, min_value=0.0, min_clamped=True, step=0,
                            format="%.2f", width=NUM_W, label="range w (penalty on pixels outside [-1, 1])")
        dpg.add_text("feature networks: checking...", tag=t("features"), wrap=390, color=DIM_COLOUR)
        with dpg.group(horizontal=True):
            dpg.add_input_text(tag=t("run_dir"), hint="run dir (default runs/<dataset>-<time>)", width=330)
            dpg.add_button(label="...", tag=t("run_browse"), callback=self._on_browse, user_data="run_dir")
        with dpg.group(horizontal=True):
            dpg.add_button(label="Start", tag=t("start"), width=70, callback=self._on_start)
            dpg.add_button(label="Stop", tag=t("stop"), width=70, callback=self._on_stop, show=False)
            dpg.add_button(label="Resume", tag=t("resume"), width=70, callback=self._on_resume)
            dpg.add_button(label="Attach", tag=t("attach"), width=70, callback=self._on_attach)
        dpg.add_text("", tag=t("status"), wrap=390)
        dpg.add_progress_bar(tag=t("progress"), default_value=0.0, width=-1, overlay="no run")

        # no_inputs: the mouse wheel over a plot scrolls the panel (ImPlot would zoom and swallow it); the
        # axes fit the data by themselves as it arrives.
        with dpg.plot(tag=t("plot_loss"), height=150, width=-1, no_menus=True, no_mouse_pos=True, no_inputs=True):
            dpg.add_plot_legend(location=dpg.mvPlot_Location_NorthEast)
            dpg.add_plot_axis(dpg.mvXAxis, label="kimg", tag=t("loss_x"))
            with dpg.plot_axis(dpg.mvYAxis, label="loss", tag=t("loss_y")):
                dpg.add_line_series([], [], label="G loss", tag=t("series.G_loss"))
                dpg.add_line_series([], [], label="D loss", tag=t("series.D_loss"))
        with dpg.plot(tag=t("plot_speed"), height=130, width=-1, no_menus=True, no_mouse_pos=True, no_inputs=True):
            dpg.add_plot_legend(location=dpg.mvPlot_Location_NorthEast)
            dpg.add_plot_axis(dpg.mvXAxis, label="kimg", tag=t("speed_x"))
            with dpg.plot_axis(dpg.mvYAxis, label="sec/kimg", tag=t("speed_y")):
                dpg.add_line_series([], [], label="sec/kimg", tag=t("series.sec_per_kimg"))
            dpg.add_plot_axis(dpg.mvYAxis2, label="metrics", tag=t("metric_y"), opposite=True, show=False)

        for plot in ("plot_loss", "plot_speed"):
            dpg.bind_item_theme(t(plot), t("series_theme"))
        dpg.add_text("Latest samples:", tag=t("sample_label"), color=DIM_COLOUR)
        dpg.add_group(tag=t("sample_group"))
        dpg.add_text("Snapshots (newest first):", color=DIM_COLOUR)
        with dpg.child_window(tag=t("snapshots"), height=110, width=-1):
            dpg.add_text("(none yet)", color=DIM_COLOUR)

    # ------------------------------------------------------------------ helpers
    def set_status(self, text: str, error: bool = False) -> None:
        self.status_text, self.status_error = text, error
        if dpg.does_item_exist(self.tag("status")):
            dpg.set_value(self.tag("status"), text)
            dpg.configure_item(self.tag("status"), color=ERROR_COLOUR if error else TEXT_COLOUR)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.running

    def _value(self, name: str):
        return dpg.get_value(self.tag(name))

    def _text(self, name: str) -> str:
        return str(self._value(name) or "").strip()

    def _run_dir_field(self) -> str:
        return self._text("run_dir")

    # ------------------------------------------------------------------ dataset
    def check_dataset(self) -> DatasetInfo | None:
        """Validate the dataset field and say what it holds (or what is wrong) under it."""
        try:
            info = check_dataset(self._text("data"))
        except SGXLError as e:
            self.dataset = None
            dpg.set_value(self.tag("data_info"), str(e))
            dpg.configure_item(self.tag("data_info"), color=ERROR_COLOUR)
            return None
        self.dataset = info
        hint = self._stage_hint(info)
        dpg.set_value(self.tag("data_info"), info.summary() + (f"\n{hint}" if hint else ""))
        dpg.configure_item(self.tag("data_info"), color=OK_COLOUR)
        return info

    def _stage_hint(self, info: DatasetInfo) -> str:
        if self._text("grow_from"):
            return f"grows the grow-from snapshot to {info.resolution}x{info.resolution}"
        if info.resolution == 16:
            return "a new run starts with the 16x16 stem"
        return (f"a new run starts at 16x16: build a 16x16 dataset for the stem, or set grow-from to a "
                f"snapshot of the stage below {info.resolution}x{info.resolution}")

    def _on_check(self, sender=None, app_data=None, user_data=None) -> None:
        self.check_dataset()

    def _on_browse(self, sender, app_data, user_data: str) -> None:
        field = {"data_folder": "data", "data_zip": "data", "grow_from": "grow_from", "run_dir": "run_dir"}[user_data]
        current = Path(self._text(field)).expanduser() if self._text(field) else None
        if current is not None:
            folder = current if current.is_dir() else current.parent
            if folder.is_dir():
                dpg.configure_item(self.tag(f"dialog.{user_data}"), default_path=str(folder))
        dpg.show_item(self.tag(f"dialog.{user_data}"))

    def _on_dialog(self, sender, app_data, user_data: str) -> None:
        path = (app_data or {}).get("file_path_name", "")
        if not path:
            return
        field = {"data_folder": "data", "data_zip": "data"}.get(user_data, user_data)
        dpg.set_value(self.tag(field), path)
        if field == "data":
            self.check_dataset()
        elif field == "run_dir":
            self.attach(path, quiet=True)

    def _probe_features(self) -> None:
        self._features_text = probe_feature_networks()  # a child process: safe to wait for on this thread

    # ------------------------------------------------------------------ actions
    def request(self, resume: str | None = None) -> TrainRequest:
        """The panel's fields as a `sgxl train` request."""
        out = self._run_dir_field()
        if resume:
            return TrainRequest(out=resume, resume=resume, device=self._value("device"),
                                kimg=self._resume_kimg(resume))
        if self.dataset is None:
            raise UserInputError("choose a valid dataset first")
        if not out:
            stem = Path(self.dataset.path).stem or "run"
            out = str(Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
            dpg.set_value(self.tag("run_dir"), str(Path(out).resolve()))
        cls_weight = float(self._value("cls_weight"))
        range_weight = float(self._value("range_weight"))
        return TrainRequest(out=out, data=self.dataset.path, preset=self._value("preset"),
                            grow_from=self._text("grow_from") or None, keep_d=bool(self._value("keep_d")),
                            batch=int(self._value("batch")),
                            kimg=_positive(self._value("kimg"), "kimg"), snap=_positive(self._value("snap"), "snap"),
                            tick=_positive(self._value("tick"), "log every"),
                            cls_weight=cls_weight if cls_weight > 0 else None,
                            range_weight=range_weight if range_weight > 0 else None,
                            d_input_size=int(self._value("d_input")), device=self._value("device"))

    def _resume_kimg(self, run_dir: str) -> float | None:
        """None (continue to the run's own target) unless it got there already: then `kimg` more."""
        f = RunFollower(run_dir)
        f.poll()
        if f.total_kimg is not None and f.kimg >= f.total_kimg - 1e-9:
            return round(f.kimg + _positive(self._value("kimg"), "kimg"), 6)
        return None

    def _on_start(self, sender=None, app_data=None, user_data=None) -> None:
        self._guarded(self._start)

    def _on_resume(self, sender=None, app_data=None, user_data=None) -> None:
        self._guarded(self._resume)

    def _guarded(self, action) -> None:
        """Bad input (no dataset, an occupied run dir, ...) is said in the panel and the status bar."""
        try:
            action()
        except (SGXLError, OSError) as e:
            self.set_status(str(e), error=True)
            self.app.set_status(f"train: {e}", error=True)

    def _start(self) -> None:
        if self.running:
            self.set_status("a run is going: stop it first (or Attach to another run dir to watch it)", error=True)
            return
        if self.check_dataset() is None:
            self.set_status("cannot start: " + dpg.get_value(self.tag("data_info")), error=True)
            return
        grow = self._text("grow_from")
        if grow and not Path(grow).expanduser().is_file():
            raise UserInputError(f"grow-from: no snapshot at {grow}")
        req = self.request()
        run = Path(req.out).expanduser()
        if (run / "log.jsonl").exists():
            raise UserInputError(f"{run} already holds a run: Resume or Attach it, or choose another run dir")
        self._launch(req)

    def _resume(self) -> None:
        if self.running:
            self.set_status("this run is still going", error=True)
            return
        run = self._run_dir_field() or (str(self.follower.run_dir) if self.follower else "")
        if not run:
            raise UserInputError("set the run dir of the run to resume")
        if not (Path(run).expanduser() / "latest.sgxl").is_file():
            raise UserInputError(f"{run} has no latest.sgxl snapshot to resume from")
        self._launch(self.request(resume=run))

    def _launch(self, req: TrainRequest) -> None:
        self.proc = TrainProcess.start(req)
        self._follow(Path(req.out).expanduser().resolve())
        self.set_status("starting: loading the dataset and the feature networks...")
        self.app.set_status(f"training started in {self.follower.run_dir} (pid {self.proc.pid})")

    def _on_stop(self, sender=None, app_data=None, user_data=None) -> None:
        if not self.running:
            self.set_status("no run is going")
            return
        self.proc.stop()
        self.set_status(*self.describe())

    def _on_attach(self, sender=None, app_data=None, user_data=None) -> None:
        self.attach(self._run_dir_field())

    def attach(self, run_dir: str, quiet: bool = False) -> bool:
        """Follow `run_dir` (running or finished); True if it holds a training log."""
        if self.running:
            if not quiet:
                self.set_status("a run is going: stop it before attaching to another", error=True)
            return False
        run = Path(run_dir).expanduser() if run_dir else None
        if run is None or not (run / "log.jsonl").is_file():
            if not quiet:
                self.set_status(f"{run_dir or '(empty)'}: no log.jsonl here, so not a run directory", error=True)
            return False
        self.proc = TrainProcess.find(run)
        self._follow(run.resolve())
        return True

    def _follow(self, run: Path) -> None:
        self.follower = RunFollower(run)
        self._exit_seen = False
        self._shown_version = -1
        self._snapshot_paths = ()
        dpg.delete_item(self.tag("metric_y"), children_only=True)  # the previous run's metric curves
        dpg.configure_item(self.tag("metric_y"), show=False)
        dpg.set_value(self.tag("run_dir"), str(run))
        self._next_poll = 0.0
        self.poll()

    def _open_snapshot(self, sender, app_data, path: str) -> None:
        self.app.open_checkpoint(path)

    # ------------------------------------------------------------------ per frame
    def tick(self, now: float) -> None:
        if not self._features_started and dpg.does_item_exist(self.tag("header")) and dpg.get_value(
                self.tag("header")):
            self._features_started = True  # first time the panel is opened
            threading.Thread(target=self._probe_features, daemon=True, name="feature-probe").start()
        if self._features_text is not None:
            dpg.set_value(self.tag("features"), self._features_text)
            self._features_text = None
        if self.follower is not None and now >= self._next_poll:
            self._next_poll = now + POLL_S
            self.poll()

    def poll(self) -> None:
        """Read the run's news and update the widgets (the headless tests call it directly)."""
        f = self.follower
        if f is None:
            return
        f.poll()
        running = self.running  # one answer for this whole update, so status and buttons agree
        exited = self.proc is not None and not running and not self._exit_seen
        if exited:
            self._exit_seen = True
            f.poll()  # the last lines the trainer wrote before it exited
            text, error = self.describe(running)
            self.app.set_status("train: " + text.splitlines()[0], error=error)
        if f.version != self._shown_version or exited:
            self._shown_version = f.version
            self._update_plots()
            self._update_snapshots()
            self._update_sample()
        self._update_progress(running)
        text, error = self.describe(running)
        if (text, error) != (self.status_text, self.status_error):
            self.set_status(text, error)
        self.shown_running = running
        dpg.configure_item(self.tag("start"), show=not running)
        dpg.configure_item(self.tag("resume"), show=not running)
        dpg.configure_item(self.tag("stop"), show=running)

    def _update_plots(self) -> None:
        f = self.follower
        xs = f.series["kimg"]
        shown: dict[str, list[float]] = {axis: [] for axis in ("loss_x", "loss_y", "speed_x", "speed_y", "metric_y")}
        for key, x_axis, y_axis in (("G_loss", "loss_x", "loss_y"), ("D_loss", "loss_x", "loss_y"),
                                    ("sec_per_kimg", "speed_x", "speed_y")):
            pts = [(x, y) for x, y in zip(xs, f.series[key]) if math.isfinite(y)]
            px, py = [p[0] for p in pts], [p[1] for p in pts]
            dpg.set_value(self.tag(f"series.{key}"), [px, py])
            shown[x_axis] += px
            shown[y_axis] += py
        for name, (mx, my) in f.metrics.items():
            series = self.tag(f"series.metric.{name}")
            if not dpg.does_item_exist(series):
                dpg.configure_item(self.tag("metric_y"), show=True)
                dpg.add_line_series([], [], label=name, tag=series, parent=self.tag("metric_y"))
            dpg.set_value(series, [list(mx), list(my)])
            shown["metric_y"] += list(my)
        for axis, values in shown.items():
            _fit(self.tag(axis), values)

    def _update_progress(self, running: bool) -> None:
        f = self.follower
        if f.total_kimg:
            eta = f.eta_seconds() if running else None
            speed = f.sec_per_kimg()
            overlay = f"{_kimg(f.kimg)} / {_kimg(f.total_kimg)} kimg"
            if speed is not None:
                overlay += f", {speed:.0f} s/kimg"
            if eta is not None:
                overlay += f", ETA {format_seconds(eta)}"
        else:
            overlay = "waiting for the trainer..." if running else "no progress logged"
        dpg.set_value(self.tag("progress"), f.progress)
        dpg.configure_item(self.tag("progress"), overlay=overlay)

    def _update_snapshots(self) -> None:
        snaps = list(reversed(self.follower.existing_snapshots()))
        paths = tuple(s.path for s in snaps)
        if paths == self._snapshot_paths:
            return
        self._snapshot_paths = paths
        box = self.tag("snapshots")
        dpg.delete_item(box, children_only=True)
        if not snaps:
            dpg.add_text("(none yet)", color=DIM_COLOUR, parent=box)
        for i, s in enumerate(snaps):
            with dpg.group(horizontal=True, parent=box):
                dpg.add_button(label="Open", tag=self.tag(f"open.{i}"), user_data=s.path,
                               callback=self._open_snapshot)
                dpg.add_text(f"{s.kimg:8.3f} kimg  {Path(s.path).name}", tag=self.tag(f"snap.{i}"))

    def _update_sample(self) -> None:
        path = self.follower.last_sample
        if path is None:
            self._drop_sample()
            return
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return
        if path == self._sample_path and mtime == self._sample_mtime:
            return
        try:
            from PIL import Image

            with Image.open(path) as im:
                rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        except OSError:
            return  # half-written: the next snapshot event brings another
        h, w = rgba.shape[:2]
        self._drop_sample()
        self._sample_path, self._sample_mtime = path, mtime
        self._texture = dpg.add_static_texture(w, h, rgba.reshape(-1), parent=self.app.texture_registry)
        self._sample_shape = (h, w)
        scale = min(SAMPLE_MAX[0] / w, SAMPLE_MAX[1] / h)
        if scale >= 2:
            scale = math.floor(scale)  # whole multiples keep tiny grids crisp
        dpg.add_image(self._texture, tag=self.tag("sample"), width=max(1, int(w * scale)),
                      height=max(1, int(h * scale)), parent=self.tag("sample_group"))
        dpg.set_value(self.tag("sample_label"), f"Latest samples: {path.name}")

    def _drop_sample(self) -> None:
        """Delete the image and its texture (so no texture is kept for a grid nobody sees)."""
        if dpg.does_item_exist(self.tag("sample")):
            dpg.delete_item(self.tag("sample"))
        if self._texture is not None:
            dpg.delete_item(self._texture)
            self._texture, self._sample_shape = None, None
        self._sample_path = None

    def describe(self, running: bool | None = None) -> tuple[str, bool]:
        """One status message for the run: what it is doing, how it ended, or why it failed."""
        f, p = self.follower, self.proc
        if f is None:
            return "", False
        running = self.running if running is None else running
        last_snap = f.existing_snapshots()[-1] if f.existing_snapshots() else None
        keep = (f"\nthe last good snapshot ({last_snap.kimg:.3f} kimg) is intact: open it below, or Resume"
                if last_snap else "")
        if running:
            if f.errors:
                return f"training error: {f.errors[-1]}{keep}", True
            if p.stop_requested_at is not None:
                return "stopping: finishing this step, then writing a final snapshot...", False
            if not _leg_started(f, p):
                return "starting: loading the dataset and the feature networks...", False
            return f"training in {f.run_dir.name} (pid {p.pid})", False
        rc = p.poll() if p is not None else None
        stopped = p is not None and p.stop_requested_at is not None
        if f.errors:
            return f"training failed: {f.errors[-1]}{keep}", True
        if rc not in (None, 0, -1):
            if stopped and not _leg_started(f, p):
                return "stopped before the first step (nothing to save)", False
            why = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
            if rc in (-9, 137):
                why += " (out of memory?)"
            tail = p.stderr_tail(6)
            return f"training failed ({why}):\n{tail}{keep}", True
        if f.last_event == "done":
            return f"done: {f.kimg:.3f} kimg in {f.run_dir.name}", False
        if f.last_event == "stopped":
            return f"stopped at {f.kimg:.3f} kimg (Resume continues it)", False
        if f.records == 0:
            return "no log records yet", False
        return (f"not running: the log ends at {f.kimg:.3f} kimg without a stop, so the trainer was killed"
                f"{keep}", False)

    # ------------------------------------------------------------------ tests
    def test_state(self) -> dict:
        f = self.follower
        rect = self.app.rect
        names = ("header", "data", "check", "batch", "kimg", "snap", "tick", "d_input", "device", "run_dir",
                 "start", "stop", "resume", "attach", "progress", "plot_loss", "snapshots", "sample", "status")
        return {
            "running": self.shown_running,  # as the panel shows it (updated with the status, every POLL_S)
            "pid": None if self.proc is None else self.proc.pid,
            "run_dir": None if f is None else str(f.run_dir),
            "kimg": None if f is None else f.kimg,
            "total_kimg": None if f is None else f.total_kimg,
            "progress": None if f is None else f.progress,
            "ticks": 0 if f is None else len(f.series["kimg"]),
            "last_event": None if f is None else f.last_event,
            "snapshots": list(self._snapshot_paths),
            "sample": None if self._sample_path is None else str(self._sample_path),
            "sample_shape": list(self._sample_shape) if self._sample_shape else None,
            "status": self.status_text,
            "status_error": self.status_error,
            "dataset": dpg.get_value(self.tag("data_info")),
            "progress_overlay": dpg.get_item_configuration(self.tag("progress"))["overlay"],
            "fields": {n: dpg.get_value(self.tag(n)) for n in ("data", "preset", "batch", "kimg", "snap", "tick",
                                                              "cls_weight", "d_input", "device", "run_dir")},
            "rects": {**{n: rect(self.tag(n)) for n in names},
                      "open": [rect(self.tag(f"open.{i}")) for i in range(len(self._snapshot_paths))]},
        }


def _fit(axis: str, values: list[float]) -> None:
    """Fit an axis to its data; one point (or a flat line) gets a window around it (ImPlot keeps 0..1 then)."""
    if values and max(values) - min(values) < 1e-12:
        v = values[0]
        pad = abs(v) * 0.5 or 1.0
        dpg.set_axis_limits(axis, v - pad, v + pad)
    else:
        dpg.set_axis_limits_auto(axis)
        dpg.fit_axis_data(axis)


def _leg_started(f: RunFollower, p: TrainProcess) -> bool:
    """Did the process we launched get as far as training (its own "start" event, not an older leg's)?"""
    return f.started_at is not None and (p.launched_at is None or f.started_at >= p.launched_at)


def _kimg(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _positive(value, name: str) -> float:
    v = float(value)
    if not v > 0:
        raise UserInputError(f"{name} must be positive")
    return v
