"""Class browser: searchable class list, a grid of the current seed rendered in each class (click a
thumbnail to pick that class), and a slider blending the class embedding toward a second class.

StyleGAN-XL's mapping takes class *weights* [B, c_dim] (paper Sec. 4.1: the class embedding is a
linear function of them), so a blend of two classes is a valid input, and truncation then pulls
toward the blended class centre `c @ w_avg`.
"""

from __future__ import annotations

import dearpygui.dearpygui as dpg
import numpy as np

from explorer.panels.base import Panel
from explorer.renderer import ModelInfo, Thumbnails

GRID_COLS = 4
GRID_MAX = 16
CELL = 76  # px per thumbnail cell
LIST_HEIGHT = 190
THUMBS_AFTER_IDLE_S = 0.5  # thumbnails wait until the main view has been still this long


def filter_classes(info: ModelInfo | None, text: str) -> list[int]:
    """Class indices whose "index: name" contains `text` (case-insensitive); all classes for ""."""
    if info is None or info.c_dim == 0:
        return []
    needle = text.strip().lower()
    return [i for i in range(info.c_dim) if not needle or needle in f"{i}: {info.class_name(i)}".lower()]


def compose_grid(images: np.ndarray, cols: int) -> np.ndarray:
    """uint8 [N, t, t, 3] -> uint8 [rows * t, cols * t, 3] (row-major; empty cells black)."""
    n, t = images.shape[0], images.shape[1]
    rows = max(1, -(-n // cols))
    grid = np.zeros([rows * t, cols * t, 3], np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * t:(r + 1) * t, c * t:(c + 1) * t] = images[i]
    return grid


class ClassPanel(Panel):
    key = "class"
    title = "Class"

    def __init__(self, app) -> None:
        super().__init__(app)
        self.visible: list[int] = []
        self._thumb_key: tuple | None = None  # key of the thumbnails requested last
        self._thumbs: Thumbnails | None = None
        self._texture: int | str | None = None
        self._texture_shape: tuple[int, int] | None = None

    def build_root(self) -> None:
        with dpg.item_handler_registry(tag=self.tag("grid_handlers")):
            dpg.add_item_clicked_handler(button=dpg.mvMouseButton_Left, callback=self._on_grid_click)

    def build(self) -> None:
        dpg.add_text("", tag=self.tag("none"), show=False, color=(170, 170, 170))
        dpg.add_input_text(tag=self.tag("filter"), hint="search classes", width=-1, callback=self._on_filter)
        with dpg.child_window(tag=self.tag("list"), height=LIST_HEIGHT, width=-1):
            pass
        dpg.add_text("The current image in each class (click to pick):", color=(170, 170, 170))
        dpg.add_drawlist(GRID_COLS * CELL, CELL, tag=self.tag("grid"))
        dpg.bind_item_handler_registry(self.tag("grid"), self.tag("grid_handlers"))
        dpg.add_separator()
        dpg.add_text("Blend the class embedding toward:", color=(170, 170, 170))
        dpg.add_combo([], tag=self.tag("b"), width=-1, callback=self._on_class_b)
        dpg.add_slider_float(label="blend", tag=self.tag("t"), min_value=0.0, max_value=1.0, width=220,
                             callback=self._on_class_t)

    def on_model(self, info: ModelInfo) -> None:
        conditional = info.c_dim > 0
        if dpg.does_item_exist(f"{self.key}.header"):
            dpg.configure_item(f"{self.key}.header", show=conditional)  # unconditional: no class panel at all
        dpg.configure_item(self.tag("none"), show=not conditional)
        dpg.set_value(self.tag("none"), "" if conditional else "This model is unconditional: no classes.")
        for name in ("filter", "list", "grid", "b", "t"):
            dpg.configure_item(self.tag(name), show=conditional)
        dpg.delete_item(self.tag("list"), children_only=True)
        for i in range(info.c_dim):
            dpg.add_selectable(label=f"{i}: {info.class_name(i)}", tag=self.tag(f"item.{i}"),
                               parent=self.tag("list"), user_data=i, callback=self._on_item,
                               default_value=i == self.state.class_idx)
        labels = [self._label(i) for i in range(info.c_dim)]
        dpg.configure_item(self.tag("b"), items=labels)
        if labels:
            dpg.set_value(self.tag("b"), labels[self.state.class_b])
        dpg.set_value(self.tag("t"), self.state.class_t)
        self._thumb_key = None
        self._thumbs = None
        self._apply_filter()

    def _label(self, i: int) -> str:
        info = self.app.info
        return f"{i}: {info.class_name(i)}" if info else str(i)

    # ------------------------------------------------------------------ callbacks

    def _on_item(self, sender, app_data, user_data) -> None:
        self.select(int(user_data))

    def select(self, idx: int) -> None:
        """Make `idx` the current class (list highlight, grid outline and render settings follow)."""
        info = self.app.info
        if info is None or not 0 <= idx < info.c_dim:
            return
        old = self.state.class_idx
        self.state.class_idx = idx
        if dpg.does_item_exist(self.tag(f"item.{old}")):
            dpg.set_value(self.tag(f"item.{old}"), False)
        dpg.set_value(self.tag(f"item.{idx}"), True)
        self._draw_grid()

    def _on_filter(self, sender, text, user_data=None) -> None:
        self.state.class_filter = str(text)
        self._apply_filter()

    def _apply_filter(self) -> None:
        self.visible = filter_classes(self.app.info, self.state.class_filter)
        keep = set(self.visible)
        info = self.app.info
        for i in range(info.c_dim if info else 0):
            dpg.configure_item(self.tag(f"item.{i}"), show=i in keep)
        rows = max(1, -(-min(len(self.visible), GRID_MAX) // GRID_COLS))
        dpg.configure_item(self.tag("grid"), height=rows * CELL)
        self._draw_grid()

    def grid_classes(self) -> tuple[int, ...]:
        return tuple(self.visible[:GRID_MAX])

    def _on_grid_click(self, sender=None, app_data=None, user_data=None) -> None:
        mx, my = dpg.get_mouse_pos(local=False)
        x0, y0 = dpg.get_item_rect_min(self.tag("grid"))
        self.click_grid_cell(int((mx - x0) // CELL), int((my - y0) // CELL))

    def click_grid_cell(self, col: int, row: int) -> None:
        classes = self.grid_classes()
        i = row * GRID_COLS + col
        if 0 <= col < GRID_COLS and 0 <= i < len(classes):
            self.select(classes[i])

    def _on_class_b(self, sender, label, user_data=None) -> None:
        self.state.class_b = int(str(label).split(":", 1)[0])

    def _on_class_t(self, sender, value, user_data=None) -> None:
        self.state.class_t = float(value)

    # ------------------------------------------------------------------ thumbnails

    def tick(self, now: float) -> None:
        renderer, info = self.app.renderer, self.app.info
        if info is None or info.c_dim == 0:
            return
        thumbs = renderer.take_thumbnails()
        if thumbs is not None:
            self._thumbs = thumbs
            self._upload(thumbs)
        # Thumbnails only render while the main view is idle, so they never slow down scrubbing.
        settings = self.app.current_settings
        classes = self.grid_classes()
        idle = now - self.app.settings_changed_at > THUMBS_AFTER_IDLE_S and not self.app.mouse_held
        if settings is None or not classes or renderer.busy() or not idle:
            return
        key = renderer.thumb_key(settings, classes)
        if key != self._thumb_key:
            self._thumb_key = key
            renderer.request_thumbnails(settings, classes)

    def _upload(self, thumbs: Thumbnails) -> None:
        grid = compose_grid(thumbs.images, GRID_COLS)
        rgb = (grid.astype(np.float32) / 255.0).reshape(-1)  # raw textures take float32
        h, w = grid.shape[:2]
        if self._texture_shape != (h, w):
            old = self._texture
            self._texture = dpg.add_raw_texture(w, h, rgb, format=dpg.mvFormat_Float_rgb,
                                                parent=self.app.texture_registry)
            self._texture_shape = (h, w)
            if old is not None:
                dpg.delete_item(old)
        else:
            dpg.set_value(self._texture, rgb)
        self._texture_array = rgb  # the raw texture points at this array: keep it alive, never write it
        self._draw_grid()

    def _draw_grid(self) -> None:
        grid = self.tag("grid")
        if not dpg.does_item_exist(grid):
            return
        dpg.delete_item(grid, children_only=True)
        classes = self.grid_classes()
        thumbs = self._thumbs
        shown = thumbs is not None and thumbs.classes == classes and self._texture is not None
        rows = max(1, -(-len(classes) // GRID_COLS))
        for n, idx in enumerate(classes):
            r, c = divmod(n, GRID_COLS)
            p0, p1 = (c * CELL, r * CELL), ((c + 1) * CELL - 1, (r + 1) * CELL - 1)
            if shown:  # one texture holds the whole grid; each cell draws its part of it
                uv0 = (c / GRID_COLS, r / rows)
                uv1 = ((c + 1) / GRID_COLS, (r + 1) / rows)
                dpg.draw_image(self._texture, p0, p1, uv_min=uv0, uv_max=uv1, parent=grid)
            else:
                dpg.draw_rectangle(p0, p1, color=(60, 60, 60), fill=(30, 30, 35), parent=grid)
            dpg.draw_text((p0[0] + 3, p0[1] + 2), str(idx), size=13, color=(255, 255, 255), parent=grid)
            if idx == self.state.class_idx:
                dpg.draw_rectangle(p0, p1, color=(255, 200, 60), thickness=2, parent=grid)
