"""Capture: save the frame on screen as a PNG (the generator's pixels, not the scaled view), save the whole
window as a PNG (as the StyleGAN3 visualizer's "Save GUI"), and copy the `sgxl generate` command that
renders the frame on screen again, byte for byte, without the explorer.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import fields
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

from core.errors import SGXLError
from explorer.panels.base import Panel
from explorer.renderer import Frame, ModelInfo, RenderSettings

WINDOW_SHOT_TIMEOUT_S = 10.0  # Dear PyGui writes the frame buffer during a later frame; give up after this


def capture_name(s: RenderSettings) -> str:
    if s.latent:  # an inverted photo: its latent's name, made safe for a file name
        head = "latent-" + re.sub(r"[^\w.-]+", "_", s.latent)
    elif len(s.seeds) == 1:
        head = f"seed{s.seeds[0][0]}"
    else:
        head = "seedblend" + "-".join(str(x) for x, _ in s.seeds[:2])
    cls = "" if not s.classes else (f"-class{s.classes[0][0]}" if len(s.classes) == 1 else "-classblend")
    extra = f"-cutoff{s.trunc_cutoff}" if s.trunc_cutoff is not None else ""
    extra += "-mix" if s.mix_layers else ""
    extra += f"-{s.layer}-{s.layer_view}{s.channel}" if s.layer else ""
    return f"{head}{cls}-psi{s.psi:.2f}{extra}"


def unique_path(folder: Path, stem: str) -> Path:
    path = folder / f"{stem}.png"
    n = 1
    while path.exists():
        path = folder / f"{stem}-{n}.png"
        n += 1
    return path


# The RenderSettings fields `generate_command` writes (or that why_not_generate refuses by name); any other
# field that is not at its default makes the frame one the command would not reproduce.
HANDLED_FIELDS = {"ckpt", "seeds", "classes", "psi", "trunc_cutoff", "mix_seed", "mix_classes", "mix_layers",
                  "translate", "rotate", "layer", "channel", "layer_view", "latent", "noise_mode", "noise_seed"}


def why_not_generate(s: RenderSettings) -> list[str]:
    """What in these settings `sgxl generate` cannot express (empty: it reproduces the frame exactly)."""
    reasons = [f"the frame uses {f.name} = {getattr(s, f.name)!r}, which the command does not carry"
               for f in fields(s) if f.name not in HANDLED_FIELDS and getattr(s, f.name) != f.default]
    if s.latent:
        reasons.append("an inverted photo's latent is shown (sgxl generate renders seeds)")
    elif len(s.seeds) != 1 or s.seeds[0][1] != 1.0:
        reasons.append("the image blends several seeds: press 'Snap to seed' and set 'seed -> seed B' to 0")
    if len(s.classes) > 1 or any(w != 1.0 for _, w in s.classes):
        reasons.append("the class embedding is blended: set the class blend to 0")
    if len(s.mix_classes) > 1 or any(w != 1.0 for _, w in s.mix_classes):
        reasons.append("the style-mix class is blended")
    if s.layer:
        reasons.append("a layer's activations are shown, not the output image")
    return reasons


def generate_command(s: RenderSettings, info: ModelInfo, out: str | Path) -> str:
    """The `sgxl generate` line that writes exactly the frame of `s` (check `why_not_generate` first).

    One seed in one class is what `sgxl generate` renders (`core.sampling.ws_from_seeds`, the same as the
    explorer's plain frames); floats are written with Python's shortest round-trip repr, so the command
    parses back to the very psi/translation the frame used.
    """
    args = ["sgxl", "generate", "--ckpt", str(Path(info.path).resolve()), f"--seeds={s.seeds[0][0]}"]
    if s.classes:
        args.append(f"--class={s.classes[0][0]}")
    args.append(f"--trunc={s.psi!r}")
    if s.trunc_cutoff is not None:
        args.append(f"--trunc-cutoff={s.trunc_cutoff}")
    if s.mix_layers and s.mix_seed is not None:
        args += [f"--style-mix-seed={s.mix_seed}", "--style-mix-layers=" + ",".join(map(str, s.mix_layers))]
        if s.mix_classes:
            args.append(f"--style-mix-class={s.mix_classes[0][0]}")
    if not s.transform_is_identity:
        # "=" keeps argparse from reading a negative value as an option.
        args += [f"--translate={s.translate[0]!r},{s.translate[1]!r}", f"--rotate={s.rotate!r}"]
    if s.noise_mode != "const":  # StyleGAN2's noise inputs (const, the default, is what generate does)
        args.append(f"--noise-mode={s.noise_mode}")
        if s.noise_mode == "random":
            args.append(f"--noise-seed={s.noise_seed}")
    args += [f"--device={info.device}", "--out", str(out)]
    return shlex.join(args)


class CapturePanel(Panel):
    key = "capture"
    title = "Capture"
    default_open = False

    def __init__(self, app) -> None:
        super().__init__(app)
        self.command = ""  # the last command made by "Copy sgxl command" ("" when the frame had none)
        self.clipboard = ""  # what the clipboard held right after copying (tests)
        self.window_shot: Path | None = None  # a whole-window PNG being written ...
        self._window_shot_since = 0.0  # ... since this time
        self.window_shots: list[str] = []  # written whole-window PNGs

    def build(self) -> None:
        dpg.add_input_text(label="folder", tag=self.tag("dir"), default_value="out/explorer", width=250)
        dpg.add_button(label="Save PNG of the current frame", tag=self.tag("save"), callback=self._on_save)
        dpg.add_button(label="Save PNG of the whole window", tag=self.tag("save_window"),
                       callback=self._on_save_window)
        dpg.add_button(label="Copy sgxl command", tag=self.tag("copy"), callback=self._on_copy)
        dpg.add_input_text(tag=self.tag("command"), width=-1, readonly=True, hint="the sgxl generate line of the frame")
        dpg.add_text("", tag=self.tag("last"), wrap=380)

    def folder(self) -> Path:
        return Path(dpg.get_value(self.tag("dir")) or ".")

    def _on_save(self, sender=None, app_data=None, user_data=None) -> None:
        path = self.save(self.folder())
        dpg.set_value(self.tag("last"), f"saved {path}")
        self.app.set_status(f"saved {path}")

    def save(self, folder: Path) -> Path:
        """Write the frame as a new PNG in `folder` (atomically: a full disk raises DiskFullError, which the
        app shows in the status bar, and leaves no partial file)."""
        from core.io.files import save_image

        frame = self.app.frame
        if frame is None:
            raise SGXLError("nothing to save yet: no frame has been rendered")
        folder.mkdir(parents=True, exist_ok=True)
        return save_image(unique_path(folder, capture_name(frame.settings)), self.exact_image(frame))

    def exact_image(self, frame: Frame) -> np.ndarray:
        """uint8 [H, W, 3] of the exact frame: a preview on screen (bf16 / no last-stage anti-aliasing, while the
        input moves) is replaced by the exact frame of its settings - cached, or rendered now on this thread - and
        a frame of the compiled synthesis (equal up to float rounding: a pixel on a rounding boundary can differ by
        one) by the eager render, so a capture always equals what the copied `sgxl generate` line writes."""
        if frame.preview:
            frame = self.app.renderer.render_frame(frame.settings)
        return self.app.renderer.render_sync(frame.settings) if frame.compiled else frame.to_uint8()

    # ------------------------------------------------------------------ whole window

    def _on_save_window(self, sender=None, app_data=None, user_data=None) -> None:
        self.save_window(self.folder())

    def save_window(self, folder: Path) -> Path:
        """Ask Dear PyGui for the whole window as a PNG; it is written while the next frame is drawn."""
        if self.window_shot is not None:
            raise SGXLError("a window capture is still being written")
        folder.mkdir(parents=True, exist_ok=True)
        path = unique_path(folder, "window-" + time.strftime("%Y%m%d-%H%M%S"))
        dpg.output_frame_buffer(file=str(path))
        self.window_shot, self._window_shot_since = path, self.app.clock()
        dpg.set_value(self.tag("last"), f"writing {path} ...")
        return path

    def tick(self, now: float) -> None:
        path = self.window_shot
        if path is None:
            return
        if path.exists() and path.stat().st_size > 0:
            self.window_shot = None
            self.window_shots.append(str(path))
            dpg.set_value(self.tag("last"), f"saved {path}")
            self.app.set_status(f"saved the window as {path}")
        elif now - self._window_shot_since > WINDOW_SHOT_TIMEOUT_S:
            self.window_shot = None
            self.app.set_status(f"the window capture {path.name} was not written", error=True)

    # ------------------------------------------------------------------ command

    def _on_copy(self, sender=None, app_data=None, user_data=None) -> None:
        self.copy_command()

    def copy_command(self) -> str:
        """Make the `sgxl generate` line of the frame on screen: show it, print it, put it on the clipboard."""
        frame, info = self.app.frame, self.app.info
        if frame is None or info is None:
            raise SGXLError("nothing to reproduce yet: no frame has been rendered")
        reasons = why_not_generate(frame.settings)
        if reasons:
            self.command = ""
            dpg.set_value(self.tag("command"), "")
            text = "sgxl generate cannot reproduce this frame: " + "; ".join(reasons)
            dpg.set_value(self.tag("last"), text)
            self.app.set_status(text)
            return ""
        out = self.folder() / f"{capture_name(frame.settings)}-sgxl.png"
        self.command = generate_command(frame.settings, info, out)
        dpg.set_value(self.tag("command"), self.command)
        print(self.command, flush=True)
        copied = True
        try:
            dpg.set_clipboard_text(self.command)
            self.clipboard = dpg.get_clipboard_text() or ""
        except Exception:  # no clipboard (e.g. no X selection owner): the field and stdout still have it
            copied = False
        where = "copied to the clipboard and printed" if copied and self.clipboard == self.command else "printed"
        dpg.set_value(self.tag("last"), f"{where}: the command writes this frame to {out}")
        self.app.set_status(f"sgxl command {where}")
        return self.command

    def test_state(self) -> dict:
        return {"command": self.command, "clipboard": self.clipboard, "window_shots": list(self.window_shots),
                "window_shot_pending": None if self.window_shot is None else str(self.window_shot)}
