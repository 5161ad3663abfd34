"""Invert panel: a photo -> projection + pivotal tuning in a child process -> the current latent and model.

The photo is checked here (core/inversion/photo.py: Pillow only) and its centre crop at the model's
resolution is shown as a small static texture; the inversion itself runs in `explorer.invert_worker`
(a separate process: it needs timm, which must never be imported into the explorer, see
explorer/invert_run.py). The panel polls the worker's files every POLL_S: step count, the loss curve,
the latest preview image. When the worker says "done" and has exited cleanly, its PTI-tuned generator
(pti.sgxl) becomes the renderer's model and the pivot ws become the current latent (a latent registered
in the renderer), so psi, class, style mixing, transform and layer views all act on the inverted photo.
Cancel terminates the worker; a cancelled or failed run loads nothing. "Revert" reopens the generator
the photo was inverted into, keeping the latent when its shape fits.
"""

from __future__ import annotations

import math
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

from core.errors import CheckpointError, SGXLError, UserInputError
from explorer.invert_run import InvertFollower, InvertProcess, InvertRequest, default_run_dir
from explorer.panels.base import Panel
from explorer.renderer import ModelInfo, model_key

POLL_S = 0.25
AUTO_CLASS = "auto"
CROP_PX = 128  # the crop preview's size in the panel (nearest-neighbour enlarged for small models)
PREVIEW_PX = 128
ERROR_COLOUR = (255, 110, 100)
TEXT_COLOUR = (200, 200, 200)
DIM_COLOUR = (150, 150, 150)
NUM_W = 90
PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def _rgba(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> flat float32 RGBA in [0, 1] (what a static texture takes)."""
    h, w = image.shape[:2]
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = image.astype(np.float32) / 255.0
    return rgba.reshape(-1)


class InvertPanel(Panel):
    key = "invert"
    title = "Invert"
    default_open = False

    def __init__(self, app) -> None:
        super().__init__(app)
        self.proc: InvertProcess | None = None
        self.follower: InvertFollower | None = None
        self.status_text = ""
        self.status_error = False
        self.original: tuple[str, str] | None = None  # (checkpoint path, device) the photo is inverted into
        self.result_path: str | None = None  # the pti.sgxl loaded as the current model
        self.latent_name = ""
        self._latents = 0
        self._handled_exit = False
        self._next_poll = 0.0
        self._shown_version = -1
        self._textures: dict[str, int | str] = {}  # "crop" / "preview" -> static texture
        self._shapes: dict[str, tuple[int, int]] = {}
        self._preview_mtime = 0

    # ------------------------------------------------------------------ UI
    def build_root(self) -> None:
        with dpg.file_dialog(label="Photo to invert", tag=self.tag("dialog"), show=False, modal=True, width=700,
                             height=420, default_filename="", callback=self._on_dialog):
            dpg.add_file_extension("Images{" + ",".join(PHOTO_EXTENSIONS) + "}")
            dpg.add_file_extension(".*")

    def build(self) -> None:
        t = self.tag
        dpg.add_input_text(tag=t("photo"), hint="photo to invert (png, jpg, ...)", width=-1, on_enter=True,
                           callback=self._on_photo)
        with dpg.group(horizontal=True):
            dpg.add_button(label="Open...", tag=t("open"), callback=self._on_open)
            dpg.add_button(label="Check", tag=t("check"), callback=self._on_photo)
        with dpg.group(horizontal=True):
            dpg.add_group(tag=t("crop_group"))
            dpg.add_text("no photo chosen", tag=t("photo_info"), wrap=250, color=DIM_COLOUR)
        # Crop: a square of `zoom` x the short side, centred at (x, y) as fractions of the photo.
        dpg.add_slider_float(label="crop size", tag=t("crop_zoom"), default_value=1.0, min_value=0.1, max_value=1.0,
                             width=200, callback=self._on_crop)
        dpg.add_slider_floatx(label="crop centre x, y", tag=t("crop_centre"), size=2, default_value=[0.5, 0.5],
                              min_value=0.0, max_value=1.0, width=200, callback=self._on_crop)
        dpg.add_combo([AUTO_CLASS], tag=t("class"), default_value=AUTO_CLASS, width=200, label="class")
        with dpg.group(horizontal=True):
            dpg.add_input_int(tag=t("steps"), default_value=300, min_value=1, min_clamped=True, step=0, width=NUM_W,
                              label="steps")
            dpg.add_input_int(tag=t("pti_steps"), default_value=100, min_value=0, min_clamped=True, step=0,
                              width=NUM_W, label="PTI steps")
        with dpg.group(horizontal=True):
            dpg.add_checkbox(label="W+", tag=t("w_plus"), default_value=False)
            dpg.add_input_int(tag=t("net_size"), default_value=0, min_value=0, min_clamped=True, step=0,
                              width=NUM_W, label="perceptual net input (0: auto)")
        dpg.add_input_text(tag=t("run_dir"), hint="output folder (default runs/invert/<photo>-<time>)", width=-1)
        with dpg.group(horizontal=True):
            dpg.add_button(label="Start", tag=t("start"), width=70, callback=self._on_start)
            dpg.add_button(label="Cancel", tag=t("cancel"), width=70, callback=self._on_cancel, show=False)
            dpg.add_button(label="Revert to original generator", tag=t("revert"), callback=self._on_revert,
                           show=False)
        dpg.add_text("", tag=t("status"), wrap=390)
        dpg.add_progress_bar(tag=t("progress"), default_value=0.0, width=-1, overlay="not started")
        # no_inputs: the mouse wheel over a plot scrolls the panel (ImPlot would zoom and swallow it); the
        # axes fit the data by themselves as it arrives.
        with dpg.plot(tag=t("plot"), height=140, width=-1, no_menus=True, no_mouse_pos=True, no_inputs=True):
            dpg.add_plot_legend(location=dpg.mvPlot_Location_NorthEast)
            dpg.add_plot_axis(dpg.mvXAxis, label="step", tag=t("x"))
            with dpg.plot_axis(dpg.mvYAxis, label="loss", tag=t("y")):
                dpg.add_line_series([], [], label="projection", tag=t("series.projection"))
                dpg.add_line_series([], [], label="PTI", tag=t("series.pti"))
        dpg.add_text("Latest preview:", color=DIM_COLOUR)
        dpg.add_group(tag=t("preview_group"))

    def on_model(self, info: ModelInfo) -> None:
        labels = [AUTO_CLASS] + [f"{i}: {info.class_name(i)}" for i in range(info.c_dim)]
        dpg.configure_item(self.tag("class"), items=labels, enabled=info.c_dim > 0)
        if dpg.get_value(self.tag("class")) not in labels:
            dpg.set_value(self.tag("class"), AUTO_CLASS)
        latent = self.app.state.latent
        if latent and not self.app.renderer.latent_fits(latent, info):
            self.app.state.latent = ""  # e.g. another checkpoint of another size was opened
            self.set_status("the inverted latent does not fit this model: showing seeds again")
        if self.result_path is not None and info.path != self.result_path:
            self.result_path = None
        self._update_buttons()

    # ------------------------------------------------------------------ helpers
    def set_status(self, text: str, error: bool = False) -> None:
        self.status_text, self.status_error = text, error
        if dpg.does_item_exist(self.tag("status")):
            dpg.set_value(self.tag("status"), text)
            dpg.configure_item(self.tag("status"), color=ERROR_COLOUR if error else TEXT_COLOUR)
        if error:
            self.app.set_status(f"invert: {text.splitlines()[0]}", error=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.running

    def _text(self, name: str) -> str:
        return str(dpg.get_value(self.tag(name)) or "").strip()

    def _show_image(self, which: str, image: np.ndarray, size_px: int) -> None:
        """Replace the static texture `which` ("crop" / "preview") with `image` (uint8 [H, W, 3])."""
        self._drop_image(which)
        h, w = image.shape[:2]
        self._textures[which] = dpg.add_static_texture(w, h, _rgba(image), parent=self.app.texture_registry)
        self._shapes[which] = (h, w)
        scale = size_px / max(h, w)
        scale = math.floor(scale) if scale >= 1 else scale  # whole multiples keep tiny images crisp
        dpg.add_image(self._textures[which], tag=self.tag(f"{which}_image"), width=max(1, int(w * scale)),
                      height=max(1, int(h * scale)), parent=self.tag(f"{which}_group"))

    def _drop_image(self, which: str) -> None:
        if dpg.does_item_exist(self.tag(f"{which}_image")):
            dpg.delete_item(self.tag(f"{which}_image"))
        tex = self._textures.pop(which, None)
        if tex is not None:
            dpg.delete_item(tex)
        self._shapes.pop(which, None)

    def drop_textures(self) -> None:
        for which in list(self._textures):
            self._drop_image(which)

    # ------------------------------------------------------------------ photo
    def check_photo(self):
        """Load the photo as the inversion will see it and show the crop; a clear message when it is bad."""
        from core.inversion.photo import crop_box, load_photo, photo_size  # Pillow + torch only: safe here

        path = self._text("photo")
        if not path:
            raise UserInputError("choose a photo to invert (Open... or type its path)")
        res = self.app.info.resolution if self.app.info is not None else CROP_PX
        try:
            # The untouched crop is no box at all: then the worker loads the photo exactly as `sgxl invert`
            # does (the centre square; big JPEGs decoded at reduced scale), so both invert the same target.
            box = None if self._default_crop() else crop_box(
                photo_size(Path(path).expanduser()), float(dpg.get_value(self.tag("crop_zoom"))),
                tuple(dpg.get_value(self.tag("crop_centre"))[:2]))
            photo = load_photo(Path(path).expanduser(), res, box)
        except SGXLError as e:
            self._drop_image("crop")
            dpg.set_value(self.tag("photo_info"), str(e))
            dpg.configure_item(self.tag("photo_info"), color=ERROR_COLOUR)
            raise
        self._show_image("crop", photo.to_uint8(), CROP_PX)
        w, h = photo.original_size
        left, top, side = photo.box
        text = "\n".join([f"{w}x{h} {photo.mode}, crop {side}x{side} at ({left}, {top}) -> {res}x{res}",
                          *photo.notes])
        dpg.set_value(self.tag("photo_info"), text)
        dpg.configure_item(self.tag("photo_info"), color=DIM_COLOUR)
        return photo

    def _default_crop(self) -> bool:
        return float(dpg.get_value(self.tag("crop_zoom"))) >= 1.0 and \
            tuple(dpg.get_value(self.tag("crop_centre"))[:2]) == (0.5, 0.5)

    def _on_photo(self, sender=None, app_data=None, user_data=None) -> None:
        self._guarded(self.check_photo)

    def _on_crop(self, sender=None, app_data=None, user_data=None) -> None:
        if self._text("photo"):
            self._guarded(self.check_photo)

    def _on_open(self, sender=None, app_data=None, user_data=None) -> None:
        current = self._text("photo")
        if current and Path(current).expanduser().parent.is_dir():
            dpg.configure_item(self.tag("dialog"), default_path=str(Path(current).expanduser().parent))
        dpg.show_item(self.tag("dialog"))

    def _on_dialog(self, sender, app_data, user_data=None) -> None:
        path = (app_data or {}).get("file_path_name", "")
        if path:
            dpg.set_value(self.tag("photo"), path)
            self._guarded(self.check_photo)

    def _guarded(self, action) -> None:
        try:
            action()
        except (SGXLError, OSError) as e:
            self.set_status(str(e), error=True)

    # ------------------------------------------------------------------ start / cancel / revert
    def request(self) -> InvertRequest:
        info = self.app.info
        if info is None:
            raise UserInputError("open a checkpoint first: the photo is inverted into the loaded generator")
        photo = self.check_photo()
        # Inverting again after a result was loaded goes into the original generator, not the tuned copy.
        ckpt = self.original[0] if self.original and info.path == self.result_path else info.path
        if not ckpt or not Path(ckpt).is_file():
            raise UserInputError("the loaded model has no checkpoint file the inversion process could open")
        label = dpg.get_value(self.tag("class"))
        class_idx = None if label == AUTO_CLASS or info.c_dim == 0 else int(str(label).split(":")[0])
        steps, pti_steps = int(dpg.get_value(self.tag("steps"))), int(dpg.get_value(self.tag("pti_steps")))
        if steps < 1 or pti_steps < 0:
            raise UserInputError("steps must be at least 1 and PTI steps at least 0")
        out = self._text("run_dir") or str(default_run_dir(self._text("photo")).resolve())
        return InvertRequest(ckpt=ckpt, image=self._text("photo"), out=out, class_idx=class_idx, steps=steps,
                             pti_steps=pti_steps, w_plus=bool(dpg.get_value(self.tag("w_plus"))),
                             perceptual_size=int(dpg.get_value(self.tag("net_size"))) or None,
                             preview_every=max(1, (steps + pti_steps) // 200), device=info.device,
                             box=None if self._default_crop() else tuple(photo.box))

    def start(self, command: list[str] | None = None) -> None:
        """Start the worker for the panel's fields (`command` replaces the worker's command line: tests)."""
        if self.running:
            raise UserInputError("an inversion is running: cancel it first")
        req = self.request()
        out = Path(req.out)
        if (out / "progress.jsonl").exists():
            raise UserInputError(f"{out} already holds an inversion: choose another output folder")
        if self.original is None or self.app.info.path != self.result_path:
            self.original = (req.ckpt, self.app.info.device)
        self.proc = InvertProcess.start(req, command)
        self.follower = InvertFollower(out.resolve())
        self._handled_exit = False
        self._shown_version = -1
        self._preview_mtime = 0
        self._drop_image("preview")
        dpg.set_value(self.tag("run_dir"), str(out.resolve()))
        self.set_status("starting: loading the model and the perceptual network...")
        self._next_poll = 0.0
        self._update_buttons()

    def _on_start(self, sender=None, app_data=None, user_data=None) -> None:
        self._guarded(self.start)

    def cancel(self) -> None:
        """Terminate the worker; whatever it wrote is left on disk but nothing is loaded."""
        if not self.running:
            self.set_status("no inversion is running")
            return
        self.proc.cancel()
        self._handled_exit = True
        self.set_status(f"cancelled at step {self.follower.global_step if self.follower else 0}: nothing loaded")
        self._update_buttons()

    def _on_cancel(self, sender=None, app_data=None, user_data=None) -> None:
        self.cancel()

    def revert(self) -> None:
        """Reopen the generator the photo was inverted into (the latent stays when it fits)."""
        if self.original is None:
            raise UserInputError("nothing to revert: no inversion was loaded")
        path, device = self.original
        latent = self.app.state.latent
        self.app.load_checkpoint_sync(path, device)  # on_model drops the latent when it does not fit
        self.result_path = None
        kept = " (the inverted latent is kept)" if latent and self.app.state.latent == latent else ""
        self.set_status(f"back to the original generator {Path(path).name}{kept}")
        self._update_buttons()

    def _on_revert(self, sender=None, app_data=None, user_data=None) -> None:
        self._guarded(self.revert)

    def close(self) -> None:
        """The explorer is closing: an inversion nobody will load is stopped."""
        if self.running:
            self.proc.cancel()

    # ------------------------------------------------------------------ loading the result
    def load_result(self, path: str | Path) -> None:
        """pti.sgxl -> the renderer's model, its pivot -> the current latent (class and psi = 1 to match)."""
        from core.io.checkpoint import load_checkpoint  # no timm: core.inversion.pti is not imported here

        path = Path(path)
        device = self.app.device if self.app.info is None else self.app.info.device
        ckpt = load_checkpoint(path, device=device)
        group = ckpt.extra_tensors.get("pivot") or {}  # core.inversion.pti.PIVOT_GROUP
        if "ws" not in group:
            raise CheckpointError(f"{path} holds no inversion pivot")
        cls = int(group["class"][0]) if "class" in group else -1
        self._latents += 1
        name = f"inverted:{path.parent.name}#{self._latents}"
        self.app.renderer.register_latent(name, group["ws"], None if cls < 0 else cls)
        info = self.app.renderer.set_model(ckpt.generator, key=model_key(path, device), path=str(path),
                                           class_names=ckpt.class_names, kimg=float(ckpt.meta.get("kimg", 0) or 0),
                                           device=device)
        self.result_path = str(path)
        self.app._on_loaded(info)
        st = self.app.state
        st.latent = self.latent_name = name
        if cls >= 0 and info.c_dim:
            st.class_t = 0.0
            self.app.class_panel.select(cls)
            if dpg.does_item_exist(self.app.class_panel.tag("t")):
                dpg.set_value(self.app.class_panel.tag("t"), 0.0)
        st.psi = 1.0  # show the inversion as it is; the psi slider then moves it toward the class centre
        dpg.set_value(self.app.latent_panel.tag("psi"), 1.0)
        st.lerp_t, st.animate = 0.0, False  # the "seed -> seed B" slider then interpolates the photo to seed B
        dpg.set_value(self.app.latent_panel.tag("lerp_t"), 0.0)
        if dpg.does_item_exist(self.app.latent_panel.tag("animate")):
            dpg.set_value(self.app.latent_panel.tag("animate"), False)
        # Panels that tick after this one this frame (class thumbnails) must not use the old model's settings.
        self.app.current_settings = st.settings(info)
        self.app.settings_changed_at = self.app.clock()
        self._update_buttons()

    # ------------------------------------------------------------------ per frame
    def tick(self, now: float) -> None:
        if self.follower is not None and now >= self._next_poll:
            self._next_poll = now + POLL_S
            self.poll()

    def poll(self) -> None:
        """Read the worker's news, update the widgets, and load the result once it is complete."""
        f, p = self.follower, self.proc
        if f is None:
            return
        f.poll()
        rc = p.poll() if p is not None else None
        if f.version != self._shown_version:
            self._shown_version = f.version
            self._update_plot()
        self._update_preview()
        total = f.total_steps
        dpg.set_value(self.tag("progress"), f.global_step / total if total else 0.0)
        overlay = f"step {f.global_step} / {total}" if total else "starting..."
        if f.last_psnr is not None:
            overlay += f", PSNR {f.last_psnr:.2f} dB"
        dpg.configure_item(self.tag("progress"), overlay=overlay)
        if rc is None:
            if f.start is not None and not self._handled_exit:
                s = f.start
                cls = "" if s.get("class") is None else f" in class {s.get('class_name') or s['class']}"
                phase = "pivotal tuning" if f.phase == "pti" else "projecting"
                self._set_if_changed(f"{phase}{cls}: step {f.global_step} / {total}")
            return
        if self._handled_exit:
            return
        self._handled_exit = True
        f.poll()  # the last lines written before the exit
        self._update_plot()
        self._update_preview()
        if p.cancelled:
            return
        if f.done is not None and rc == 0:
            try:
                self.load_result(f.result)
            except (SGXLError, OSError) as e:
                self.set_status(f"the result could not be loaded: {e}", error=True)
                return
            m = (f.done.get("pti") or f.done.get("projection") or {})
            psnr = f", PSNR {m['psnr']:.2f} dB" if isinstance(m.get("psnr"), (int, float)) else ""
            self.set_status(f"done{psnr}: the tuned generator and the inverted latent are loaded")
            self.app.set_status(f"inversion loaded from {f.run_dir}")
        elif f.error is not None:
            self.set_status(f"inversion failed: {f.error}", error=True)
        else:
            why = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
            self.set_status(f"inversion failed ({why}):\n{p.stderr_tail()}", error=True)
        self._update_buttons()

    def _set_if_changed(self, text: str) -> None:
        if (text, False) != (self.status_text, self.status_error):
            self.set_status(text)

    def _update_buttons(self) -> None:
        running = self.running
        dpg.configure_item(self.tag("start"), show=not running)
        dpg.configure_item(self.tag("cancel"), show=running)
        dpg.configure_item(self.tag("revert"), show=self.original is not None and self.result_path is not None)

    def _update_plot(self) -> None:
        f = self.follower
        values_x: list[float] = []
        values_y: list[float] = []
        for phase in ("projection", "pti"):
            xs, ys = f.steps.get(phase, ([], []))
            dpg.set_value(self.tag(f"series.{phase}"), [list(xs), list(ys)])
            values_x += xs
            values_y += ys
        for axis, values in (("x", values_x), ("y", values_y)):
            if values and max(values) - min(values) < 1e-12:
                v = values[0]
                dpg.set_axis_limits(self.tag(axis), v - (abs(v) * 0.5 or 1.0), v + (abs(v) * 0.5 or 1.0))
            else:
                dpg.set_axis_limits_auto(self.tag(axis))
                dpg.fit_axis_data(self.tag(axis))

    def _update_preview(self) -> None:
        path = self.follower.preview
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return
        if mtime == self._preview_mtime:
            return
        try:
            from PIL import Image

            with Image.open(path) as im:
                image = np.asarray(im.convert("RGB"))
        except OSError:
            return  # replaced atomically, so this is rare: the next poll retries
        self._preview_mtime = mtime
        self._show_image("preview", image, PREVIEW_PX)

    # ------------------------------------------------------------------ tests
    def test_state(self) -> dict:
        f, rect = self.follower, self.app.rect
        return {
            "running": self.running,
            "pid": None if self.proc is None else self.proc.pid,
            "run_dir": None if f is None else str(f.run_dir),
            "step": 0 if f is None else f.global_step,
            "total": 0 if f is None else f.total_steps,
            "losses": 0 if f is None else sum(len(xs) for xs, _ in f.steps.values()),
            "done": f is not None and f.done is not None,
            "status": self.status_text,
            "status_error": self.status_error,
            "result": self.result_path,
            "latent": self.app.state.latent,
            "original": None if self.original is None else self.original[0],
            "crop_shape": list(self._shapes["crop"]) if "crop" in self._shapes else None,
            "preview_shape": list(self._shapes["preview"]) if "preview" in self._shapes else None,
            "rects": {n: rect(self.tag(n)) for n in ("header", "photo", "start", "cancel", "revert", "plot")},
        }
