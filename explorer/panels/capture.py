"""Capture: save the frame on screen as a PNG (the generator's pixels, not the scaled view)."""

from __future__ import annotations

import re
from pathlib import Path

import dearpygui.dearpygui as dpg

from core.errors import SGXLError
from explorer.panels.base import Panel
from explorer.renderer import RenderSettings


def capture_name(s: RenderSettings) -> str:
    if s.latent:  # an inverted photo: its latent's name, made safe for a file name
        head = "latent-" + re.sub(r"[^\w.-]+", "_", s.latent)
    elif len(s.seeds) == 1:
        head = f"seed{s.seeds[0][0]}"
    else:
        head = "seedblend" + "-".join(str(x) for x, _ in s.seeds[:2])
    cls = "" if not s.classes else (f"-class{s.classes[0][0]}" if len(s.classes) == 1 else "-classblend")
    extra = "-mix" if s.mix_layers else ""
    extra += f"-{s.layer}-{s.layer_view}{s.channel}" if s.layer else ""
    return f"{head}{cls}-psi{s.psi:.2f}{extra}"


class CapturePanel(Panel):
    key = "capture"
    title = "Capture"
    default_open = False

    def build(self) -> None:
        dpg.add_input_text(label="folder", tag=self.tag("dir"), default_value="out/explorer", width=250)
        dpg.add_button(label="Save PNG of the current frame", tag=self.tag("save"), callback=self._on_save)
        dpg.add_text("", tag=self.tag("last"), wrap=380)

    def _on_save(self, sender=None, app_data=None, user_data=None) -> None:
        path = self.save(Path(dpg.get_value(self.tag("dir")) or "."))
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
        stem = capture_name(frame.settings)
        path = folder / f"{stem}.png"
        n = 1
        while path.exists():
            path = folder / f"{stem}-{n}.png"
            n += 1
        return save_image(path, frame.to_uint8())
