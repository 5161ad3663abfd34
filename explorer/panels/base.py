"""What every panel has: a title, `build()` (its Dear PyGui widgets), `on_model()` and `tick()`.

Panels only edit `app.state` (the UI state) and call `app` services; the app turns the state into
render settings once per frame. Widget tags are `"<panel key>.<name>"` strings so tests can find
them (`dpg.get_item_callback(tag)` is how the headless tests press the same buttons a user does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from explorer.app import Explorer
    from explorer.renderer import ModelInfo
    from explorer.state import ExplorerState


class Panel:
    key = "panel"
    title = "Panel"
    default_open = True

    def __init__(self, app: Explorer) -> None:
        self.app = app

    @property
    def state(self) -> ExplorerState:
        return self.app.state

    def tag(self, name: str) -> str:
        return f"{self.key}.{name}"

    def build_root(self) -> None:
        """Top-level items (file dialogs, handler registries); called outside any window."""

    def build(self) -> None:
        """Create the panel's widgets inside the current container."""
        raise NotImplementedError

    def on_model(self, info: ModelInfo) -> None:
        """A model was loaded: rebuild model-dependent widgets (class list, layer checkboxes...)."""

    def tick(self, now: float) -> None:
        """Called once per UI frame on the main thread (animation, drags, polling)."""
