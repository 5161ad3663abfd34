"""GUI test fixtures: a private Xvfb server, a tiny checkpoint, and a driver for the explorer subprocess.

The explorer runs in a subprocess (the GLFW bundled with Dear PyGui aborts a process that cannot
open a display, and a crash must fail a test, not the whole session). It writes its UI state as
JSON every frame (`--test-state-file`): widget rectangles in screen pixels, the render settings
the widgets stand for, and the settings of the frame on screen. Tests aim `xdotool` with the
rectangles and take screenshots with ImageMagick's `import -window root`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np
import pytest
import torch
from PIL import Image

from bench.explorer_latency import Pointer
from core.io.checkpoint import save_checkpoint
from explorer.app import Explorer
from tests.helpers import REPO, make_tiny_generator

SCREEN = (1600, 1000)
CLASS_NAMES = ["cat", "dog", "bird", "fish", "frog"]
SHOTS = Path(os.environ.get("SGXL_GUI_SHOTS", "/tmp/sgxl_gui_shots"))  # kept for a human to look at


def _free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number")


@pytest.fixture(scope="session")
def xvfb() -> Iterator[str]:
    """DISPLAY of a private `Xvfb :N -screen 0 1600x1000x24` (skips when Xvfb is not installed)."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb xdotool imagemagick libgl1-mesa-dri)")
    n = _free_display()
    screen = f"{SCREEN[0]}x{SCREEN[1]}x24"
    proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", screen, "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.skip(f"Xvfb :{n} did not start")
        time.sleep(0.05)
    try:
        yield f":{n}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def gui_tools() -> None:
    missing = [t for t in ("xdotool", "import") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (apt-get install xdotool imagemagick)")


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 'tiny' 32x32 generator with 5 named classes (distinct per-class w_avg)."""
    G = make_tiny_generator(32, c_dim=5, seed=0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny32.sgxl"
    return save_checkpoint(path, G, {"kimg": 12.5, "class_names": CLASS_NAMES})


class ExplorerProcess:
    """One `python -m explorer.app` under Xvfb, observed through its JSON state file."""

    def __init__(self, display: str, ckpt: Path | str | None, workdir: Path, fps: int = 30,
                 env: dict[str, str] | None = None, args: tuple[str, ...] = (),
                 recent: list[Path] | None = None) -> None:
        """`env`: extra environment variables; `args`: extra command-line arguments ("{workdir}" in them is
        this app's work folder); `recent`: checkpoints the Checkpoint panel lists as recently opened (after
        the one given here, which goes first once it has loaded)."""
        self.display = display
        self.state_file = workdir / "state.json"
        self.log = workdir / "explorer.log"
        recent_file = workdir / "recent.json"
        if recent:
            recent_file.write_text(json.dumps([str(Path(r).resolve()) for r in recent]))
        env = dict(os.environ, DISPLAY=display, PYTHONPATH=str(REPO), **(env or {}))
        env.pop("WAYLAND_DISPLAY", None)
        # --exit-after only stops a window whose test died without close(); it must outlast the slowest test on
        # a loaded machine (a training run waited on for minutes), or the window closes under a running test.
        cmd = [sys.executable, "-m", "explorer.app", "--fps", str(fps), "--device", "cpu",
               "--test-state-file", str(self.state_file), "--recent-file", str(recent_file),
               "--exit-after", "900", *(arg.format(workdir=workdir) for arg in args)]
        if ckpt is not None:
            cmd += ["--ckpt", str(ckpt)]
        self._log = open(self.log, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def wait_for(self, what: str, pred: Callable[[dict], bool], timeout: float = 90.0) -> dict:
        deadline = time.time() + timeout
        st = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"explorer exited ({self.proc.returncode}) waiting for {what}:\n{self.logs()}")
            st = self.state()
            if st is not None and pred(st):
                return st
            time.sleep(0.05)
        raise AssertionError(
            f"timed out waiting for {what}; last state: {json.dumps(st)[:2000]}\n{self.logs()}")

    def wait_shown(self, what: str, pred: Callable[[dict], bool] = lambda st: True,
                   timeout: float = 90.0) -> dict:
        """Wait until the frame on screen is the exact one (not a preview) the widgets ask for (and `pred`
        holds) + 2 UI frames."""
        st = self.wait_for(what, lambda s: s["displayed"] is not None and s["displayed"] == s["settings"]
                           and not s["displayed_preview"] and pred(s), timeout)
        frames = st["ui_frames"]
        return self.wait_for(f"{what} (drawn)", lambda s: s["ui_frames"] >= frames + 2
                             and s["displayed"] == st["displayed"], timeout=30)

    def drag(self, y: int, x0: int, xs: list[int], what: str, device_events: bool = False,
             ys: list[int] | None = None) -> None:
        """Press at (x0, y), move through `xs` holding the button, release; each event waits until the app
        has read it. (Timed sleeps between xdotool events fail on a busy machine: when a move and the
        release land in one UI frame, Dear PyGui lets go of the slider before it follows the move.)
        `device_events`: send the moves as XTest device events, as a real mouse makes them (xdotool's moves are
        pointer warps, which XInput 2 raw events - the app's input watcher - do not report). `ys`: the moves' y
        (default: all at `y`)."""
        pointer = None
        if device_events:
            pointer = Pointer(self.display, dict(os.environ, DISPLAY=self.display))  # the benchmark's XTest pointer
            if pointer.how != "xtest":
                pytest.skip("libXtst is not installed (apt-get install libxtst6)")

        def at(x: int, y: int = y) -> Callable[[dict], bool]:
            return lambda s: s.get("mouse_pos") == [float(x), float(y)]

        def next_frame(st: dict, why: str) -> None:
            """The press and the release come after a UI frame without input, as a user's would after pointing:
            the app takes input in consecutive frames as one stream, which the input watcher does not wake for."""
            self.wait_for(f"{what}: {why}", lambda s, n=st["ui_frames"]: s["ui_frames"] > n)

        def move(x: int, y: int = y) -> None:
            if pointer is not None:
                pointer.move(x, y)
            else:
                self.xdotool("mousemove", x, y)

        def button(down: bool) -> None:
            if pointer is not None:
                pointer.button(down)
            else:
                self.xdotool("mousedown" if down else "mouseup", 1)

        try:
            move(x0)
            next_frame(self.wait_for(f"{what}: pointer at the start", at(x0)), "a frame after the move")
            button(True)
            self.wait_for(f"{what}: button down", lambda s: s.get("mouse_held"))
            st = None
            for x, yy in zip(xs, ys or [y] * len(xs), strict=True):
                move(x, yy)
                st = self.wait_for(f"{what}: pointer at {x}, {yy}", at(x, yy))
            if st is not None:
                next_frame(st, "a frame after the last move")
            button(False)
            self.wait_for(f"{what}: button up", lambda s: not s.get("mouse_held"))
        finally:
            if pointer is not None:
                pointer.close()

    def xdotool(self, *args: object) -> None:
        subprocess.run(["xdotool", *map(str, args)], check=True, env=dict(os.environ, DISPLAY=self.display),
                       timeout=20)

    def screenshot(self, name: str) -> np.ndarray:
        """The whole screen as uint8 [H, W, 3]; also kept under SHOTS for a human to look at."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        subprocess.run(["import", "-window", "root", str(path)], check=True, timeout=30,
                       env=dict(os.environ, DISPLAY=self.display))
        return np.asarray(Image.open(path).convert("RGB"))

    def logs(self) -> str:
        self._log.flush()
        return self.log.read_text()[-3000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def launch(xvfb: str, tmp_path: Path) -> Iterator[Callable[..., ExplorerProcess]]:
    procs: list[ExplorerProcess] = []

    def _launch(ckpt: Path | str | None, **kw) -> ExplorerProcess:
        work = tmp_path / f"app{len(procs)}"
        work.mkdir()
        p = ExplorerProcess(xvfb, ckpt, work, **kw)
        procs.append(p)
        return p

    yield _launch
    for p in procs:
        p.close()


@contextmanager
def headless_explorer(tmp_path: Path, ckpt: Path | None = None) -> Iterator[Explorer]:
    """An Explorer with its widgets in a Dear PyGui context but no viewport (no display needed).

    One torch thread, as the app itself uses on 2 cores: tiny renders gain nothing from more, and OpenMP
    barriers make them many times slower when the CI machine is busy.
    """
    threads = torch.get_num_threads()
    dpg.create_context()
    explorer = Explorer(device="cpu", threaded=False, recent_file=tmp_path / "recent.json", torch_threads=1)
    explorer.build_ui()
    if ckpt is not None:
        explorer.load_checkpoint_sync(str(ckpt))
    try:
        yield explorer
    finally:
        explorer.invert_panel.close()
        explorer.invert_panel.drop_textures()
        explorer.train_panel._drop_sample()
        explorer.renderer.close()
        dpg.destroy_context()
        torch.set_num_threads(threads)


@pytest.fixture
def app(tiny_ckpt: Path, tmp_path: Path) -> Iterator[Explorer]:
    """A headless explorer with the tiny checkpoint loaded."""
    with headless_explorer(tmp_path, tiny_ckpt) as explorer:
        yield explorer
