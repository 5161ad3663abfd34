"""Explorer latency: slider move -> new frame on screen, and UI frame rate, under Xvfb on this CPU.

Starts a private Xvfb, runs the explorer on a random 'tiny' 64x64 checkpoint in a subprocess
(`--test-state-file`: the app writes its state, incl. the wall time a frame was first drawn), then
holds the psi slider with xdotool and moves it step by step. For every step:

- end to end: time before `xdotool mousemove` -> the app's `displayed_at` for the frame whose
  settings equal what the slider now says (X event delivery + UI frame + render + upload + draw);
- in app: the app's own request -> on-screen time for that frame;
- render: the worker's render time.

Then it moves back over positions already visited (frames come from the cache) and measures the
same. UI fps is counted from the app's frame counter while the mouse is held (full rate) and with
no input (idle rate).

    python -m bench.explorer_latency [--res 64] [--steps 20] [--fps 60]

`--upload ...` runs bench/frame_upload.py instead: a new frame's upload cost and UI fps per frame path
(OpenGL texture uploads, CUDA-GL, raw textures) at 64^2, 256^2, 1024^2, with synthetic frames.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.common import environment, print_table, start_xvfb, write_json
from core.io.checkpoint import save_checkpoint
from core.networks.generator import Generator
from core.networks.presets import preset_config

REPO = Path(__file__).resolve().parents[1]
# How often the state file is re-read. The times come from the app's own clock, so this only sets how soon
# the next step starts; polling every 2 ms (as before) cost the 2-core machine CPU the app's renderer needed.
POLL_S = 0.01


def read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def wait_state(path: Path, pred, timeout: float = 60.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = read_state(path)
        if st is not None and pred(st):
            return st
        time.sleep(POLL_S)
    raise TimeoutError("the explorer did not reach the expected state")


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def summarize(name: str, xs: list[float]) -> dict:
    return {"metric": name, "median_ms": round(statistics.median(xs), 1),
            "p95_ms": round(percentile(xs, 0.95), 1), "n": len(xs)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--upload" in argv:  # frame uploads per path and size: bench/frame_upload.py
        from bench.frame_upload import main as frame_upload

        return frame_upload([x for x in argv if x != "--upload"])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--fps", type=int, default=60, help="the explorer's frame cap (default 60, as shipped)")
    p.add_argument("--threads", type=int, help="the explorer's torch threads (default: its own choice)")
    p.add_argument("--ckpt", help="checkpoint to open (default: a random 'tiny' generator at --res), e.g. "
                   "assets/demo.sgxl")
    a = p.parse_args(argv)
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            print(f"skipped: {tool} is not installed (apt-get install xvfb xdotool)")
            return 0

    work = Path(tempfile.mkdtemp(prefix="sgxl-latency-"))
    if a.ckpt:
        ckpt = Path(a.ckpt).resolve()
    else:
        torch.manual_seed(0)
        G = Generator(preset_config("tiny", a.res, c_dim=5)).eval()
        ckpt = save_checkpoint(work / f"tiny{a.res}.sgxl", G, {"kimg": 0})
    xvfb, display = start_xvfb()
    state = work / "state.json"
    env = dict(os.environ, DISPLAY=display, PYTHONPATH=str(REPO))
    app = subprocess.Popen([sys.executable, "-m", "explorer.app", "--ckpt", str(ckpt), "--device", "cpu",
                            "--fps", str(a.fps), "--test-state-file", str(state), "--recent-file",
                            str(work / "recent.json"), "--exit-after", "600",
                            *(["--threads", str(a.threads)] if a.threads else [])],
                           cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def xdo(*args: object) -> None:
        subprocess.run(["xdotool", *map(str, args)], check=True, env=env)

    try:
        st = wait_state(state, lambda s: s["displayed"] is not None and s["displayed"] == s["settings"])
        # Idle frame rate: no input, nothing rendering (the class thumbnails finish first).
        time.sleep(1.0)
        wait_state(state, lambda s: not s["renderer_busy"] and s["renderer_stats"]["renders"] >= 1)
        time.sleep(1.5)
        s0 = read_state(state)
        time.sleep(3.0)
        s1 = read_state(state)
        idle_fps = (s1["ui_frames"] - s0["ui_frames"]) / (s1["time"] - s0["time"])

        r = st["rects"]["psi_slider"]
        y = int(r["y"] + r["h"] / 2)
        x_start = int(r["x"] + 8)
        span = r["frame_w"] - 16
        xs = [x_start + int(span * (i + 1) / (a.steps + 1)) for i in range(a.steps)]
        xdo("mousemove", x_start, y, "sleep", 0.2, "mousedown", 1, "sleep", 0.3)
        wait_state(state, lambda s: s["displayed"] == s["settings"])
        rows: dict[str, list[float]] = {"end_to_end": [], "in_app": [], "queue": [], "render": [],
                                        "to_screen": [], "end_to_end_cached": [], "in_app_cached": []}
        t_drag0 = time.time()
        f_drag0 = read_state(state)["ui_frames"]
        # Forward: every position is new (rendered). Backward: revisits (served from the cache).
        for phase, positions in (("", xs), ("_cached", xs[-2::-1])):
            for x in positions:
                before = read_state(state)["settings"]["psi"]
                t0 = time.time()
                xdo("mousemove", x, y)
                st = wait_state(state, lambda s, b=before, t=t0: s["settings"]["psi"] != b
                                and s["displayed"] == s["settings"] and s["displayed_at"] >= t, timeout=60)
                rows["end_to_end" + phase].append((st["displayed_at"] - t0) * 1000)
                rows["in_app" + phase].append(st["last_latency_ms"])
                if not phase:
                    for part, ms in st["last_latency_parts"].items():
                        rows[part.removesuffix("_ms")].append(ms)
                time.sleep(0.1)
        s_end = read_state(state)
        drag_fps = (s_end["ui_frames"] - f_drag0) / (s_end["time"] - t_drag0)
        xdo("mouseup", 1)
    finally:
        app.terminate()
        try:
            app.wait(timeout=10)
        except subprocess.TimeoutExpired:
            app.kill()
        xvfb.terminate()
        shutil.rmtree(work, ignore_errors=True)

    table = [summarize(name.replace("_", " "), xs) for name, xs in rows.items()]
    print(f"explorer latency at {a.res}x{a.res}, fps cap {a.fps}, {environment()['device']}, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}")
    print_table(table, ["metric", "median_ms", "p95_ms", "n"])
    print(f"UI fps while dragging {drag_fps:.1f}, idle (no input) {idle_fps:.1f}")
    path = write_json("explorer_latency", {
        "env": environment(), "resolution": a.res, "fps_cap": a.fps, "threads": a.threads, "steps": a.steps,
        "load_average_1min": os.getloadavg()[0], "cpu_count": os.cpu_count(),
        "ui_fps_dragging": drag_fps, "ui_fps_idle": idle_fps,
        "latency_ms": {k: {"median": statistics.median(v), "p95": percentile(v, 0.95), "samples": v}
                       for k, v in rows.items()},
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
