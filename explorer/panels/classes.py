"""Class browser: searchable class list, a slider blending the class embedding toward a second class,
and a scrolling grid of the current image in every class (click a thumbnail to pick that class).

StyleGAN-XL's mapping takes class *weights* [B, c_dim] (paper Sec. 4.1: the class embedding is a
linear function of them), so a blend of two classes is a valid input, and truncation then pulls
toward the blended class centre `c @ w_avg`.

The grid holds every class that passes the search filter (1000 for ImageNet), but only the rows in
view (and one row beyond) are rendered, a few thumbnails per renderer job on the renderer's worker
thread, and only once the main view has been still for a moment, so scrolling and scrubbing never
wait for them. Each thumbnail is its own static texture (uploaded once, unlike raw textures that are
re-sent every UI frame); one rendered for an older seed/psi stays dimmed until its new one arrives.
"""

from __future__ import annotations

import dearpygui.dearpygui as dpg
import numpy as np

from explorer.panels.base import Panel
from explorer.renderer import ModelInfo, Thumbnails

GRID_COLS = 4
CELL = 76  # px per thumbnail cell
LIST_HEIGHT = 190
THUMBS_AFTER_IDLE_S = 0.5  # thumbnails wait until the main view has been still this long
THUMB_BATCH = 4  # thumbnails per renderer job: a main-view request waits for at most this many
PREFETCH_ROWS = 1  # rows beyond the visible ones rendered ahead of scrolling
MAX_TEXTURES = 256  # thumbnails kept; the ones farthest from view are dropped beyond this
STALE_TINT = (255, 255, 255, 110)  # a thumbnail of older settings, until the current one arrives
DIM = (170, 170, 170)


def filter_classes(info: ModelInfo | None, text: str) -> list[int]:
    """Class indices whose "index: name" contains `text` (case-insensitive); all classes for ""."""
    if info is None or info.c_dim == 0:
        return []
    needle = text.strip().lower()
    return [i for i in range(info.c_dim) if not needle or needle in f"{i}: {info.class_name(i)}".lower()]


def rows_in_view(scroll_y: float, view_h: float, n_items: int, cols: int = GRID_COLS, cell: int = CELL,
                 ahead: int = 0) -> range:
    """Grid rows that overlap the scrolled window [scroll_y, scroll_y + view_h), plus `ahead` rows each side."""
    rows = -(-n_items // cols)
    first = max(0, int(scroll_y // cell) - ahead)
    last = min(rows, int(-(-(scroll_y + max(view_h, 1)) // cell)) + ahead)
    return range(first, max(first, last))


def rgba_texels(image: np.ndarray) -> np.ndarray:
    """uint8 [t, t, 3] -> flat float32 RGBA in [0, 1] (what a static texture takes)."""
    rgba = np.concatenate([image.astype(np.float32) / 255.0, np.ones(image.shape[:2] + (1,), np.float32)], 2)
    return rgba.reshape(-1)


class ClassPanel(Panel):
    key = "class"
    title = "Class"

    def __init__(self, app) -> None:
        super().__init__(app)
        self.visible: list[int] = []  # classes that pass the filter, in grid order
        # class -> (thumb key it was rendered for, static texture, uint8 [t, t, 3] image)
        self._textures: dict[int, tuple[tuple, int | str, np.ndarray]] = {}
        self._drawn: tuple | None = None  # what the grid was last drawn with
        self._view: range = range(0)  # grid rows on screen at the last tick
        self.thumbs_received = 0  # thumbnails the renderer delivered since the model loaded (tests, laziness)
        self.requests = 0

    def build_root(self) -> None:
        with dpg.item_handler_registry(tag=self.tag("grid_handlers")):
            dpg.add_item_clicked_handler(button=dpg.mvMouseButton_Left, callback=self._on_grid_click)

    def build(self) -> None:
        dpg.add_text("No model loaded.", tag=self.tag("none"), color=DIM, wrap=300)
        dpg.add_input_text(tag=self.tag("filter"), hint="search classes", width=-1, callback=self._on_filter)
        with dpg.child_window(tag=self.tag("list"), height=LIST_HEIGHT, width=-1):
            pass
        dpg.add_text("Blend the class embedding toward:", tag=self.tag("b_label"), color=DIM)
        dpg.add_combo([], tag=self.tag("b"), width=-1, callback=self._on_class_b)
        dpg.add_slider_float(label="blend", tag=self.tag("t"), min_value=0.0, max_value=1.0, width=220,
                             callback=self._on_class_t)
        dpg.add_separator()
        dpg.add_text("", tag=self.tag("grid_label"), color=DIM, wrap=300)
        # Fills the rest of the column and scrolls; the drawlist inside is as tall as all the rows.
        with dpg.child_window(tag=self.tag("grid_box"), width=GRID_COLS * CELL + 20, height=-1, border=False):
            dpg.add_drawlist(GRID_COLS * CELL, CELL, tag=self.tag("grid"))
        dpg.bind_item_handler_registry(self.tag("grid"), self.tag("grid_handlers"))
        for name in ("filter", "list", "b_label", "b", "t", "grid_label", "grid_box"):
            dpg.configure_item(self.tag(name), show=False)

    def on_model(self, info: ModelInfo) -> None:
        conditional = info.c_dim > 0
        if dpg.does_item_exist(f"{self.key}.header"):
            dpg.configure_item(f"{self.key}.header", show=conditional)  # unconditional: no class panel at all
        dpg.configure_item(self.tag("none"), show=not conditional)
        dpg.set_value(self.tag("none"), "" if conditional else "This model is unconditional: no classes.")
        for name in ("filter", "list", "b_label", "b", "t", "grid_label", "grid_box"):
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
        self.drop_textures()
        self.thumbs_received = self.requests = 0
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
        rows = max(1, -(-len(self.visible) // GRID_COLS))
        dpg.configure_item(self.tag("grid"), height=rows * CELL)
        n, total = len(self.visible), info.c_dim if info else 0
        what = f"{n} classes" if n == total else f"{n} of {total} classes"
        dpg.set_value(self.tag("grid_label"), f"The current image in each class ({what}; click to pick"
                      + ("; scroll for more)" if rows > 4 else ")"))
        if dpg.does_item_exist(self.tag("grid_box")):
            dpg.set_y_scroll(self.tag("grid_box"), 0)
        self._view = rows_in_view(0, self._box_height(), n)
        self._draw_grid()

    def grid_classes(self) -> tuple[int, ...]:
        """Every class in the grid, in order (the filter's result)."""
        return tuple(self.visible)

    def _on_grid_click(self, sender=None, app_data=None, user_data=None) -> None:
        mx, my = dpg.get_mouse_pos(local=False)
        x0, y0 = dpg.get_item_rect_min(self.tag("grid"))  # screen position of the drawlist, scrolled with it
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

    def _box_height(self) -> float:
        box = self.tag("grid_box")
        if not dpg.does_item_exist(box):
            return 0.0
        size = dpg.get_item_state(box).get("rect_size")
        return float(size[1]) if size else float(dpg.get_item_height(box) or 0)

    def rows_visible(self) -> range:
        """Grid rows on screen now (from the scroll position of the grid's box)."""
        box = self.tag("grid_box")
        scroll = dpg.get_y_scroll(box) if dpg.does_item_exist(box) else 0.0
        return rows_in_view(scroll, self._box_height(), len(self.visible))

    def current_key(self) -> tuple | None:
        """The thumbnail key of the current settings (renderer.thumb_key without classes); None without a model."""
        settings = self.app.current_settings
        return None if settings is None else self.app.renderer.thumb_key(settings, ())[:-1]

    def thumbnail_current(self, idx: int) -> bool:
        entry = self._textures.get(idx)
        return entry is not None and entry[0] == self.current_key()

    def thumbnail(self, idx: int) -> np.ndarray | None:
        """uint8 [t, t, 3]: the thumbnail of class `idx` for the current settings (None if not rendered yet)."""
        return self._textures[idx][2] if self.thumbnail_current(idx) else None

    def wanted(self) -> list[int]:
        """Classes in view (and PREFETCH_ROWS beyond) whose thumbnail is missing or of older settings."""
        rows = self._view
        first, last = max(0, rows.start - PREFETCH_ROWS), rows.stop + PREFETCH_ROWS
        key = self.current_key()
        cells = self.visible[first * GRID_COLS:last * GRID_COLS]
        # The rows on screen first, then the prefetched ones.
        in_view = set(self.visible[rows.start * GRID_COLS:rows.stop * GRID_COLS])
        cells.sort(key=lambda c: c not in in_view)
        return [c for c in cells if self._textures.get(c, (None,))[0] != key]

    def tick(self, now: float) -> None:
        renderer, info = self.app.renderer, self.app.info
        if info is None or info.c_dim == 0:
            return
        thumbs = renderer.take_thumbnails()
        if thumbs is not None:
            self._store(thumbs)
        view = self.rows_visible()
        if view != self._view:
            self._view = view
        self._draw_grid()
        # Thumbnails only render while the main view is idle, so they never slow down scrubbing.
        settings = self.app.current_settings
        idle = now - self.app.settings_changed_at > THUMBS_AFTER_IDLE_S and not self.app.mouse_held
        if settings is None or renderer.busy() or not idle:
            return
        batch = tuple(self.wanted()[:THUMB_BATCH])
        if batch:
            self.requests += 1
            renderer.request_thumbnails(settings, batch)

    def _store(self, thumbs: Thumbnails) -> None:
        """New thumbnails -> one static texture each (the replaced ones are deleted after the grid is redrawn)."""
        key = thumbs.key[:-1]  # renderer.thumb_key(settings, classes) without the classes
        registry = self.app.texture_registry
        old = []
        for idx, image in zip(thumbs.classes, thumbs.images):
            t = image.shape[0]
            tex = dpg.add_static_texture(t, t, rgba_texels(image), parent=registry)
            if idx in self._textures:
                old.append(self._textures[idx][1])
            self._textures[idx] = (key, tex, image)
        self.thumbs_received += len(thumbs.classes)
        self._evict(old)
        self._draw_grid(force=True)
        for tex in old:  # no draw command refers to them any more
            dpg.delete_item(tex)

    def _evict(self, old: list) -> None:
        """Keep at most MAX_TEXTURES thumbnails: drop those farthest from the rows in view."""
        if len(self._textures) <= MAX_TEXTURES:
            return
        pos = {c: i // GRID_COLS for i, c in enumerate(self.visible)}
        mid = (self._view.start + self._view.stop) / 2
        far = sorted(self._textures, key=lambda c: -abs(pos.get(c, 1e9) - mid))
        for c in far[:len(self._textures) - MAX_TEXTURES]:
            old.append(self._textures.pop(c)[1])

    def drop_textures(self) -> None:
        grid = self.tag("grid")
        if dpg.does_item_exist(grid):
            dpg.delete_item(grid, children_only=True)
        for _, tex, _ in self._textures.values():
            if dpg.does_item_exist(tex):
                dpg.delete_item(tex)
        self._textures.clear()
        self._drawn = None

    def _draw_grid(self, force: bool = False) -> None:
        """Draw the rows in view (and one more each side): thumbnail or placeholder, index, selection outline."""
        grid = self.tag("grid")
        if not dpg.does_item_exist(grid):
            return
        rows = rows_in_view(self._view.start * CELL, len(self._view) * CELL, len(self.visible), ahead=1)
        key = self.current_key()
        cells = self.visible[rows.start * GRID_COLS:rows.stop * GRID_COLS]
        state = tuple((c, *self._textures.get(c, (None, None, None))[:2]) for c in cells)
        drawn = (rows, state, key, self.state.class_idx)
        if drawn == self._drawn and not force:
            return
        self._drawn = drawn
        dpg.delete_item(grid, children_only=True)
        for n, (idx, tkey, tex) in enumerate(state):
            r, c = divmod(rows.start * GRID_COLS + n, GRID_COLS)
            p0, p1 = (c * CELL, r * CELL), ((c + 1) * CELL - 1, (r + 1) * CELL - 1)
            if tex is not None:
                dpg.draw_image(tex, p0, p1, parent=grid, color=(255, 255, 255, 255) if tkey == key else STALE_TINT)
            else:
                dpg.draw_rectangle(p0, p1, color=(60, 60, 60), fill=(30, 30, 35), parent=grid)
            label = str(idx)
            # A dark tab behind the index: thumbnails are often white where the number sits.
            dpg.draw_rectangle((p0[0] + 1, p0[1] + 1), (p0[0] + 4 + 8 * len(label), p0[1] + 16), fill=(0, 0, 0, 150),
                               color=(0, 0, 0, 0), parent=grid)
            dpg.draw_text((p0[0] + 3, p0[1] + 2), label, size=13, color=(255, 255, 255), parent=grid)
            if idx == self.state.class_idx:
                dpg.draw_rectangle(p0, p1, color=(255, 200, 60), thickness=2, parent=grid)

    def test_state(self) -> dict:
        """What GUI tests check: the grid's size, the rows in view, which thumbnails are current."""
        box = self.tag("grid_box")
        exists = dpg.does_item_exist(box)
        return {
            "classes": len(self.visible),
            "rows_visible": [self._view.start, self._view.stop],
            "current": sorted(c for c in self._textures if self.thumbnail_current(c)),
            "received": self.thumbs_received,
            "requests": self.requests,
            "scroll": dpg.get_y_scroll(box) if exists else 0.0,
            "scroll_max": dpg.get_y_scroll_max(box) if exists else 0.0,
            "box_h": self._box_height(),
        }
