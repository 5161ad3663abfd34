"""Checkpoint panel: open a .sgxl or official .pkl, recent files, model facts, CPU/CUDA device."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dearpygui.dearpygui as dpg
import torch

from core.errors import DiskFullError
from core.io.files import atomic_write_text
from explorer.panels.base import Panel
from explorer.renderer import ModelInfo

RECENT_MAX = 8
RECENT_LABEL_CHARS = 54  # what fits the left column (7 px per character of the default font)


def default_recent_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sgxl" / "explorer_recent.json"


def load_recent(path: Path) -> list[str]:
    try:
        items = json.loads(path.read_text())
        return [str(p) for p in items if isinstance(p, str)][:RECENT_MAX]
    except (OSError, ValueError):
        return []


def recent_label(path: str, max_chars: int = RECENT_LABEL_CHARS) -> str:
    """"name  -  folder", the folder shortened from the left with "..." so the line fits the panel."""
    name, folder = Path(path).name, str(Path(path).parent)
    room = max_chars - len(name) - 5
    if len(folder) > room:
        folder = "..." + folder[-max(room - 3, 8):]
    return f"{name}  -  {folder}"


def add_recent(path: Path, entry: str) -> list[str]:
    """Put `entry` first in the recent list (deduplicated, at most RECENT_MAX) and save it."""
    entry = str(Path(entry).resolve())
    items = [entry] + [p for p in load_recent(path) if p != entry]
    items = items[:RECENT_MAX]
    try:
        atomic_write_text(path, json.dumps(items, indent=1))
    except (OSError, DiskFullError):
        pass  # a read-only or full home must not break the explorer
    return items


def describe(info: ModelInfo) -> str:
    classes = f"{info.c_dim} classes" if info.c_dim else "unconditional"
    named = " (named)" if info.class_names else ""
    return (f"{Path(info.path).name or '(in memory)'}\n"
            f"resolution {info.resolution}x{info.resolution}, {classes}{named}\n"
            f"{info.num_params / 1e6:.2f} M parameters, {info.kimg:g} kimg\n"
            f"{info.label}: {info.num_ws} ws x {info.w_dim}, {len(info.layer_names)} layer views"
            f"{', noise inputs' if info.has_noise else ''}\n"
            f"device {info.device}")


class CheckpointPanel(Panel):
    key = "ckpt"
    title = "Checkpoint"

    def __init__(self, app, recent_file: Path | None = None) -> None:
        super().__init__(app)
        self.recent_file = recent_file or default_recent_file()
        self.recent: list[str] = load_recent(self.recent_file)

    def build_root(self) -> None:
        with dpg.file_dialog(label="Open a checkpoint (.sgxl, or an official StyleGAN-XL .pkl)",
                             tag=self.tag("dialog"), show=False, modal=True, width=700, height=420,
                             default_filename="", callback=self._on_dialog,
                             cancel_callback=self._on_dialog_cancel):
            dpg.add_file_extension("Checkpoints (*.sgxl *.pkl){.sgxl,.pkl}")
            dpg.add_file_extension(".sgxl", color=(120, 220, 120, 255))
            dpg.add_file_extension(".pkl", color=(220, 200, 120, 255))
            dpg.add_file_extension(".*")

    def build(self) -> None:
        dpg.add_input_text(tag=self.tag("path"), hint=".sgxl or official .pkl path", width=-1,
                           on_enter=True, callback=self._on_load)
        with dpg.group(horizontal=True):
            dpg.add_button(label="Open...", tag=self.tag("open"), callback=self._on_open)
            dpg.add_button(label="Load path", tag=self.tag("load"), callback=self._on_load)
            devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
            dpg.add_combo(devices, tag=self.tag("device"), default_value=self.app.device, width=70,
                          callback=self._on_device)
            if not torch.cuda.is_available():
                dpg.add_text("(no CUDA)", color=(150, 150, 150))
        dpg.add_text("", tag=self.tag("info"))
        dpg.add_text("Recent:", color=(170, 170, 170))
        dpg.add_group(tag=self.tag("recent"))
        self._refresh_recent()

    def on_model(self, info: ModelInfo) -> None:
        dpg.set_value(self.tag("info"), describe(info))
        dpg.set_value(self.tag("device"), info.device)
        if info.path:
            dpg.set_value(self.tag("path"), info.path)
            self.recent = add_recent(self.recent_file, info.path)
            self._refresh_recent()

    def _refresh_recent(self) -> None:
        dpg.delete_item(self.tag("recent"), children_only=True)
        if not self.recent:
            dpg.add_text("  (none yet)", parent=self.tag("recent"), color=(150, 150, 150))
        for i, p in enumerate(self.recent):
            dpg.add_selectable(label=recent_label(p), tag=self.tag(f"recent.{i}"),
                               parent=self.tag("recent"), user_data=p, callback=self._on_recent)
            with dpg.tooltip(self.tag(f"recent.{i}")):
                dpg.add_text(p)

    # ------------------------------------------------------------------ callbacks

    def _on_open(self, sender=None, app_data=None, user_data=None) -> None:
        current = dpg.get_value(self.tag("path")).strip()
        if current and Path(current).parent.is_dir():
            dpg.configure_item(self.tag("dialog"), default_path=str(Path(current).parent))
        dpg.show_item(self.tag("dialog"))

    def _on_dialog(self, sender, app_data, user_data=None) -> None:
        path = (app_data or {}).get("file_path_name", "")
        if path:
            dpg.set_value(self.tag("path"), path)
            self.app.open_checkpoint(path)

    def _on_dialog_cancel(self, sender=None, app_data=None, user_data=None) -> None:
        pass

    def _on_load(self, sender=None, app_data=None, user_data=None) -> None:
        path = dpg.get_value(self.tag("path")).strip()
        if not path:
            self.app.set_status("type a checkpoint path or use Open...", error=True)
            return
        self.app.open_checkpoint(path)

    def _on_recent(self, sender, app_data, user_data) -> None:
        dpg.set_value(sender, False)  # a selectable is a button here, not a toggle
        dpg.set_value(self.tag("path"), user_data)
        self.app.open_checkpoint(user_data)

    def _on_device(self, sender, value, user_data=None) -> None:
        self.app.set_device(value)
