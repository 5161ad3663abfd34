"""Explorer latency: slider move -> new frame on screen, and UI frame rate, under Xvfb on this CPU.

Starts a private Xvfb, runs the explorer on a random 'tiny' 64x64 checkpoint in a subprocess
(`--test-state-file`: the app writes its state, incl. the wall time a frame was first drawn), then
holds the psi slider (or, with `--drag pad`, the seed pad) and moves it step by step, with X pointer events
sent from this process (XTest; xdotool where libXtst cannot be loaded). For every step:

- end to end: time right before the pointer event goes to the X server -> the app's `displayed_at` for the frame whose
  settings equal what the slider now says (X event delivery + UI frame + render + upload + draw);
- in app: the app's own request -> on-screen time for that frame;
- render: the worker's render time.

Before each session the same checkout renders the same model with no UI (`render_alone`: `Renderer.render_sync`,
the app's thread count), so the app's exact render can be quoted against the machine's speed in the same run.

Then it moves back over positions already visited (frames come from the cache) and measures the
same, and finally steps to a few new positions and rests on each: the time to the *exact* frame
(with progressive refinement the first frame of a move is a preview; the exact one follows at rest).
UI fps is counted from the app's frame counter while the mouse is held (full rate) and with no input
(idle rate).

Every combination of `--models`, `--drag`, `--dtype` and `--progressive` is one explorer session; `--rounds`
repeats them interleaved (so a change in the machine's load hits all alike) and one table reports
medians over all rounds. `--before DIR` adds sessions of another checkout (e.g. `git archive main`
unpacked in a folder) per model, interleaved too: before/after ratios from the same run.

    python -m bench.explorer_latency [--models tiny,demo,paper256] [--drag psi,pad] [--res 64] [--dtype float32,bf16]
        [--progressive off,on] [--before DIR] [--rounds 1] [--steps 20] [--fps 60]

Models: `tiny` (random weights, --res), `demo` (assets/demo.sgxl), `paper256` (random weights, the
paper's ImageNet layer structure at 256x256 - 16x16 stem of 10 layers, 7-layer heads - at 1/32 of its
width: channel_base 2048, channel_max 32), or a checkpoint path. `--ckpt PATH` = `--models PATH`.

`--upload ...` runs bench/frame_upload.py instead: a new frame's upload cost and UI fps per frame path
(OpenGL texture uploads, CUDA-GL, raw textures) at 64^2, 256^2, 1024^2, with synthetic frames.
"""

from __future__ import annotations

import argparse
import ctypes
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
from core.networks.generator import Generator, GeneratorConfig
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


PAPER_WIDTH = 1 / 32  # of the paper's channel_base 65536 / channel_max 1024
PREVIEW_READY = ("ready", "no gain", "unsupported", "unavailable", "off")  # the bf16 plan is settled
METRICS = ("render", "exact_cpu", "preview", "preview_cpu", "queue", "fresh", "fresh_in_app", "cached", "exact_at_rest",
           "to_screen")


def paper_structure_config(resolution: int = 256, width: float = PAPER_WIDTH, c_dim: int = 10) -> GeneratorConfig:
    """The paper's ImageNet generator layout (preset `imagenet`) at `resolution`, channels scaled by `width`."""
    cfg = preset_config("imagenet", resolution, c_dim=c_dim)
    cfg.synthesis.channel_base = int(cfg.synthesis.channel_base * width)
    cfg.synthesis.channel_max = int(cfg.synthesis.channel_max * width)
    return cfg


def model_checkpoint(name: str, res: int, work: Path) -> Path:
    """A checkpoint for a --models entry (random weights, seed 0, for the presets)."""
    if name == "demo":
        return REPO / "assets" / "demo.sgxl"
    if name in ("tiny", "paper256"):
        torch.manual_seed(0)
        cfg = preset_config("tiny", res, c_dim=5) if name == "tiny" else paper_structure_config(256)
        return save_checkpoint(work / f"{name}.sgxl", Generator(cfg).eval(), {"kimg": 0})
    path = Path(name).resolve()
    if not path.exists():
        raise SystemExit(f"error: no checkpoint {name} (models: tiny, demo, paper256 or a path)")
    return path


def stat_cpu_s(proc_dir: Path) -> float:
    """CPU seconds (utime + stime) so far of the process or thread whose /proc directory is `proc_dir`."""
    fields = (proc_dir / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of the explorer's threads by role: "ui" (the main thread), "gl" (Mesa's llvmpipe rasterizer
    threads: the rest of the UI's drawing) and "render" (all others: the renderer's worker and torch's threads).

    From /proc (utime + stime): unlike wall-clock latencies these do not grow when other processes take
    the cores, so they compare the threads' own work per frame across checkouts on a busy machine."""
    roles = {"ui": 0.0, "gl": 0.0, "render": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            cpu = stat_cpu_s(task)
        except OSError:
            continue  # the thread ended meanwhile
        role = "ui" if task.name == str(pid) else "gl" if name.startswith("llvmpipe") else "render"
        roles[role] += cpu
    return roles


class Pointer:
    """Pointer moves and button 1 on `display`, sent from this process through the XTest extension.

    The clock starts right before the event is flushed to the X server. With `xdotool` (the fallback) it
    starts before a process is spawned: ~5 ms of start-up on a quiet 2-core machine and up to ~50 ms on a
    busy one, which end-to-end numbers measured that way include (this benchmark's results before Dec 2026).
    """

    def __init__(self, display: str, env: dict) -> None:
        self.env, self.how = env, "xtest"
        try:
            self.x11, self.xtst = ctypes.CDLL("libX11.so.6"), ctypes.CDLL("libXtst.so.6")
        except OSError:
            self.how, self.dpy = "xdotool", None
            return
        self.x11.XOpenDisplay.restype = ctypes.c_void_p
        self.x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        self.x11.XFlush.argtypes = self.x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self.xtst.XTestFakeMotionEvent.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                                   ctypes.c_ulong]
        self.xtst.XTestFakeButtonEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
        self.dpy = self.x11.XOpenDisplay(display.encode())
        if not self.dpy:
            raise RuntimeError(f"cannot open X display {display}")

    def move(self, x: int, y: int) -> None:
        if self.dpy is None:
            subprocess.run(["xdotool", "mousemove", str(x), str(y)], check=True, env=self.env)
            return
        self.xtst.XTestFakeMotionEvent(self.dpy, -1, int(x), int(y), 0)  # -1: the pointer's current screen
        self.x11.XFlush(self.dpy)

    def button(self, down: bool) -> None:
        if self.dpy is None:
            subprocess.run(["xdotool", "mousedown" if down else "mouseup", "1"], check=True, env=self.env)
            return
        self.xtst.XTestFakeButtonEvent(self.dpy, 1, int(down), 0)
        self.x11.XFlush(self.dpy)

    def close(self) -> None:
        if self.dpy is not None:
            self.x11.XCloseDisplay(self.dpy)
            self.dpy = None


# The exact render with no UI, in the same checkout and on the same thread count as the app, measured in the same
# run as the app's sessions: the baseline the app's own `render` is quoted against (this VM's speed drifts by 20%
# and more within an hour, so an absolute figure alone says little about the app).
RENDER_ALONE = """
import statistics, sys, time, torch
from explorer.renderer import Renderer, RenderSettings
ckpt, threads, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
renderer = Renderer(device="cpu", threaded=False)
renderer.load(ckpt)
times = []
for seed in range(n + 3):
    t0 = time.perf_counter()
    renderer.render_sync(RenderSettings.single(seed, 0, psi=0.7))
    times.append(time.perf_counter() - t0)
print(statistics.median(times[3:]) * 1000)
"""


def render_alone_ms(repo: Path, ckpt: Path, threads: int, renders: int = 20) -> float:
    """Median wall time of `Renderer.render_sync` (the exact frame, no UI, no worker thread) in checkout `repo`."""
    env = dict(os.environ, PYTHONPATH=str(repo))
    out = subprocess.run([sys.executable, "-c", RENDER_ALONE, str(ckpt), str(threads), str(renders)], cwd=repo,
                         env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def prebuild_compiled(ckpt: Path) -> None:
    """Build the compiled synthesis of `ckpt` (core.networks.aot) unless this machine has it: sessions then measure
    the explorer as it runs from the second opening of a checkpoint on, not while its background build runs."""
    from core.networks import aot

    if aot.compiler() is None or aot.package_path(ckpt).exists():
        return
    print(f"building the compiled synthesis of {ckpt.name} (once per checkpoint and machine) ...", flush=True)
    done = subprocess.run([sys.executable, "-m", "core.networks.aot", "--ckpt", str(ckpt)], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
    if done.returncode != 0:  # e.g. a StyleGAN2 checkpoint: its sessions show the state the app reports
        print(f"  not built: {(done.stderr.strip().splitlines() or ['?'])[-1]}")


def session(repo: Path, ckpt: Path, display: str, app_args: list[str], steps: int, work: Path,
            xserver_pid: int | None = None, widget: str = "psi") -> dict:
    """One explorer run on `ckpt` (from checkout `repo`): drag `widget` (the psi slider, or the seed pad) over
    `steps` new positions, back over them (cached), then rest on a few new ones. Returns the raw samples (ms) and
    the UI frame rates."""
    state = work / "state.json"
    state.unlink(missing_ok=True)
    threads = int(app_args[app_args.index("--threads") + 1]) if "--threads" in app_args else \
        max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1))  # the app's own choice (explorer/app.py)
    alone_ms = render_alone_ms(repo, ckpt, threads)
    env = dict(os.environ, DISPLAY=display, PYTHONPATH=str(repo))
    env.pop("WAYLAND_DISPLAY", None)
    log_path = work / "explorer.log"
    pointer = Pointer(display, env)  # before the app starts: nothing to clean up if the display is unusable
    with open(log_path, "w") as log:
        app = subprocess.Popen([sys.executable, "-m", "explorer.app", "--ckpt", str(ckpt), "--device", "cpu",
                                "--test-state-file", str(state), "--recent-file", str(work / "recent.json"),
                                "--exit-after", "900", *app_args],
                               cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)

    def exact(s: dict) -> bool:
        return s["displayed"] == s["settings"] and not s.get("displayed_preview", False)

    rows: dict[str, list[float]] = {m: [] for m in METRICS}
    try:
        try:
            st = wait_state(state, lambda s: s["displayed"] is not None and exact(s), timeout=300)
        except TimeoutError:
            raise RuntimeError(f"no first frame from the explorer ({repo}, exit code {app.poll()}):\n"
                               f"{log_path.read_text()[-2000:]}") from None
        # The bf16 plan is measured in the background after the load: start once it is settled.
        wait_state(state, lambda s: s.get("preview", {}).get("state", "off") in PREVIEW_READY, timeout=600)
        # Idle frame rate: no input, nothing rendering (the class thumbnails finish first).
        time.sleep(1.0)
        wait_state(state, lambda s: not s["renderer_busy"] and s["renderer_stats"]["renders"] >= 1, timeout=300)
        time.sleep(1.5)
        s0 = read_state(state)
        time.sleep(3.0)
        s1 = read_state(state)
        idle_fps = (s1["ui_frames"] - s0["ui_frames"]) / (s1["time"] - s0["time"])

        n = steps + 5
        if widget == "psi":  # across the slider
            r, key = st["rects"]["psi_slider"], "psi"
            x_start, span = int(r["x"] + 8), r["frame_w"] - 16
        else:  # the seed pad: right from its centre, 3 px (0.06 of a seed) a step
            r, key = st["rects"]["pad"], "seeds"
            x_start, span = int(r["x"] + r["w"] / 2), 3 * (n + 1)
        y = int(r["y"] + r["h"] / 2)
        xs = [x_start + int(span * (i + 1) / (n + 1)) for i in range(n)]
        drag, rest = xs[:steps], xs[steps:]
        pointer.move(x_start, y)
        time.sleep(0.2)
        pointer.button(True)
        time.sleep(0.3)
        wait_state(state, exact, timeout=300)
        t_drag0 = time.time()
        f_drag0 = read_state(state)["ui_frames"]
        cpu0 = thread_cpu_s(app.pid)
        x0 = stat_cpu_s(Path(f"/proc/{xserver_pid}")) if xserver_pid else 0.0
        # Forward: every position is new (rendered: a preview when progressive). Backward: revisits (cached).
        for phase, positions in (("fresh", drag), ("cached", drag[-2::-1])):
            for x in positions:
                before = read_state(state)["settings"][key]
                t0 = time.time()
                pointer.move(x, y)
                st = wait_state(state, lambda s, b=before, t=t0: s["settings"][key] != b
                                and s["displayed"] == s["settings"] and s["displayed_at"] >= t, timeout=120)
                rows[phase].append((st["displayed_at"] - t0) * 1000)
                if phase == "fresh":
                    parts = st["last_latency_parts"]
                    rows["fresh_in_app"].append(st["last_latency_ms"])
                    rows["preview" if st.get("displayed_preview") else "render"].append(parts["render_ms"])
                    if not st.get("displayed_preview") and "render_cpu_ms" in parts:
                        rows["exact_cpu"].append(parts["render_cpu_ms"])
                    rows["to_screen"].append(parts["to_screen_ms"])
                    rows["queue"].append(parts["queue_ms"])
                    if st.get("displayed_preview") and "render_cpu_ms" in parts:  # (older checkouts lack it)
                        rows["preview_cpu"].append(parts["render_cpu_ms"])
                time.sleep(0.1)
        s_end = read_state(state)
        # One UI frame's own work (callbacks + tick + draw, no sleep), median over the last 120 frames (mostly the
        # cached scrub): a cached frame needs two of them after the input arrives (the frame that reads the
        # input, then the one that draws the new image) plus the wait for the first to start (none when the app's
        # XInput 2 watcher wakes the loop: input_wakes counts those wakes).
        ui_frame_ms = s_end.get("ui_work_ms", 0.0)
        cpu1 = thread_cpu_s(app.pid)
        x1 = stat_cpu_s(Path(f"/proc/{xserver_pid}")) if xserver_pid else 0.0
        frames = max(1, s_end["ui_frames"] - f_drag0)
        drag_fps = frames / (s_end["time"] - t_drag0)
        ui_cpu_ms = (cpu1["ui"] - cpu0["ui"]) * 1000 / frames  # the UI thread's CPU per UI frame while dragging
        gl_cpu_ms = (cpu1["gl"] - cpu0["gl"]) * 1000 / frames  # llvmpipe's rasterizer threads per UI frame
        worker_cpu_share = (cpu1["render"] - cpu0["render"]) / (s_end["time"] - t_drag0)  # cores the renderer kept busy
        xserver_cpu_ms = (x1 - x0) * 1000 / frames  # what the X server spends per UI frame (Xvfb: the copy)
        # Rest on new positions (mouse still held): the time until the exact frame is on screen.
        for x in rest:
            before = read_state(state)["settings"][key]
            t0 = time.time()
            pointer.move(x, y)
            st = wait_state(state, lambda s, b=before, t=t0: s["settings"][key] != b and exact(s)
                            and s["displayed_at"] >= t, timeout=120)
            rows["exact_at_rest"].append((st["displayed_at"] - t0) * 1000)
            parts = st["last_latency_parts"]
            rows["render"].append(parts["render_ms"])  # the worker's time for the exact frame
            if "render_cpu_ms" in parts:  # (older checkouts lack it)
                rows["exact_cpu"].append(parts["render_cpu_ms"])  # ... and its CPU time
        pointer.button(False)
        plan = (read_state(state) or {}).get("preview", {})
    finally:
        pointer.close()
        app.terminate()
        try:
            app.wait(timeout=10)
        except subprocess.TimeoutExpired:
            app.kill()
    return {"samples": rows, "render_alone_ms": alone_ms, "ui_fps_dragging": drag_fps, "ui_fps_idle": idle_fps,
            "preview": plan,
            "ui_cpu_ms_per_frame": ui_cpu_ms, "gl_cpu_ms_per_frame": gl_cpu_ms,
            "other_threads_cpu_share": worker_cpu_share, "input": pointer.how,
            "xserver_cpu_ms_per_frame": xserver_cpu_ms, "ui_frame_ms": ui_frame_ms,
            "input_wakes": s_end.get("input_wake", {}).get("wakes", 0),  # (older checkouts: no watcher)
            "latched": s_end.get("slider_latch", {}).get("latched", ""),  # (older checkouts: no latching)
            "latch_misses": s_end.get("slider_latch", {}).get("misses", ""),
            "compiled": s_end.get("compiled", {}).get("state", "-")}  # (older checkouts: none)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--upload" in argv:  # frame uploads per path and size: bench/frame_upload.py
        from bench.frame_upload import main as frame_upload

        return frame_upload([x for x in argv if x != "--upload"])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="tiny", help="comma-separated: tiny, demo, paper256 or checkpoint paths")
    p.add_argument("--ckpt", help="checkpoint to open (same as --models PATH), e.g. assets/demo.sgxl")
    p.add_argument("--res", type=int, default=64, help="resolution of the random 'tiny' model (default 64)")
    p.add_argument("--dtype", default="bf16", help="float32, bf16 (previews, where the CPU has it) or both: "
                   "float32,bf16 (default bf16, as shipped)")
    p.add_argument("--progressive", default="on", help="on, off or both: off,on (default on, as shipped)")
    p.add_argument("--compiled", default="auto", help="exact CPU frames from the compiled synthesis: auto, off or "
                   "both: off,auto (default auto, as shipped; the package is built before the sessions)")
    p.add_argument("--before", help="also run this (older) checkout's explorer per model, interleaved")
    p.add_argument("--rounds", type=int, default=1, help="interleaved repetitions of every session")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--fps", type=int, default=60, help="the explorer's frame cap (default 60, as shipped)")
    p.add_argument("--threads", type=int, help="the explorer's torch threads (default: its own choice)")
    p.add_argument("--drag", default="psi", help="what to drag: psi (the slider), pad (the seed pad) or both: "
                   "psi,pad (default psi)")
    a = p.parse_args(argv)
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            print(f"skipped: {tool} is not installed (apt-get install xvfb xdotool)")
            return 0
    dtypes = [d.strip() for d in a.dtype.split(",")]
    progressive = [v.strip() for v in a.progressive.split(",")]
    widgets = [w.strip() for w in a.drag.split(",")]
    compiled = [c.strip() for c in a.compiled.split(",")]
    if not set(compiled) <= {"auto", "off"}:
        p.error("--compiled takes auto and/or off")
    if not set(dtypes) <= {"float32", "bf16"} or not set(progressive) <= {"on", "off"}:
        p.error("--dtype takes float32 and/or bf16, --progressive on and/or off")
    if not set(widgets) <= {"psi", "pad"}:
        p.error("--drag takes psi and/or pad")
    base = ["--fps", str(a.fps), *(["--threads", str(a.threads)] if a.threads else [])]
    work = Path(tempfile.mkdtemp(prefix="sgxl-latency-"))
    models = [a.ckpt] if a.ckpt else [m.strip() for m in a.models.split(",")]
    ckpts = {m: model_checkpoint(m, a.res, work) for m in models}
    configs = []  # (label, model, repo, app args)
    for m in models:
        if a.before:
            configs.append(("before", m, Path(a.before).resolve(), base))
        for d in dtypes:
            for pr in progressive:
                for c in compiled:
                    args = [*base, "--bf16", "auto" if d == "bf16" else "off", "--compiled", c]
                    args += ["--no-progressive"] if pr == "off" else []
                    label = f"{d}, progressive {pr}" + (", compiled off" if c == "off" else "")
                    configs.append((label, m, REPO, args))
    if "auto" in compiled:
        for m in models:
            prebuild_compiled(ckpts[m])
    xvfb, display = start_xvfb()
    results: dict[tuple[str, str, str], list[dict]] = {}
    try:
        for _ in range(a.rounds):
            for widget in widgets:
                for label, m, repo, args in configs:
                    results.setdefault((m, widget, label), []).append(
                        session(repo, ckpts[m], display, args, a.steps, work, xvfb.pid, widget))
    finally:
        xvfb.terminate()
        shutil.rmtree(work, ignore_errors=True)

    table, raw = [], []
    for (m, widget, label), runs in results.items():
        samples = {k: [x for r in runs for x in r["samples"][k]] for k in METRICS}
        row = {"model": Path(m).name, "drag": widget, "config": label}
        for k in METRICS:
            row[k] = round(statistics.median(samples[k]), 1) if samples[k] else ""
        row["render_alone"] = round(statistics.median(r["render_alone_ms"] for r in runs), 1)
        row["fps_drag"] = round(statistics.median(r["ui_fps_dragging"] for r in runs), 1)
        row["ui_cpu_ms"] = round(statistics.median(r["ui_cpu_ms_per_frame"] for r in runs), 2)
        row["gl_cpu_ms"] = round(statistics.median(r["gl_cpu_ms_per_frame"] for r in runs), 2)
        row["render_cpu"] = round(statistics.median(r["other_threads_cpu_share"] for r in runs), 2)
        row["x_cpu_ms"] = round(statistics.median(r["xserver_cpu_ms_per_frame"] for r in runs), 2)
        row["ui_frame_ms"] = round(statistics.median(r["ui_frame_ms"] for r in runs), 1)
        row["input_wakes"] = round(statistics.median(r["input_wakes"] for r in runs))
        row["fps_idle"] = round(statistics.median(r["ui_fps_idle"] for r in runs), 1)
        for key in ("latched", "latch_misses"):  # per session, over the whole drag
            counts = [r[key] for r in runs if r.get(key, "") != ""]
            row[key] = round(statistics.median(counts)) if counts else ""
        row["compiled"] = "/".join(sorted({r.get("compiled", "-") for r in runs}))
        table.append(row)
        raw.append({"model": m, "drag": widget, "config": label, "runs": runs,
                    "median_ms": {k: row[k] for k in METRICS}, "p95_ms": {
                        k: round(percentile(samples[k], 0.95), 1) for k in METRICS if samples[k]}})
    inputs = sorted({r["input"] for runs in results.values() for r in runs})
    print(f"explorer latency (medians, ms): {a.rounds} round(s), {a.steps} steps, fps cap {a.fps}, "
          f"{environment()['device']}, torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}, "
          f"pointer events by {'/'.join(inputs)}")
    print("  render/preview: the worker's time for an exact / preview frame (exact_cpu / preview_cpu: its CPU time; "
          "queue: request -> the worker starts it); fresh: slider move -> new frame "
          "on screen (end to end; fresh_in_app: from the app's request); cached: back over visited positions; "
          "exact_at_rest: move and rest -> the exact frame on screen")
    print("  render_alone: the same checkout's exact render with no UI (Renderer.render_sync, the app's thread count), "
          "measured before each session: the baseline for render")
    print("  ui_frame_ms: one UI frame's work (no sleep) while scrubbing; a cached frame needs one after the input "
          "arrives when the app latches the slider's value before the frame that reads it (latched: such frames per "
          "session, latch_misses: predictions the slider did not take), two otherwise; plus the wait for the first "
          "unless input wakes the UI loop (input_wakes: per session, up to the end of the drag)")
    print("  ui_cpu_ms / gl_cpu_ms / x_cpu_ms: CPU per UI frame while dragging of the UI thread / Mesa's llvmpipe "
          "threads / the X server; render_cpu: cores the renderer's threads kept busy meanwhile - all from /proc, "
          "robust to other processes' load")
    print_table(table, ["model", "drag", "config", "render_alone", *METRICS, "fps_drag", "fps_idle", "ui_frame_ms",
                        "input_wakes", "latched", "latch_misses", "compiled", "ui_cpu_ms", "gl_cpu_ms", "x_cpu_ms",
                        "render_cpu"])
    path = write_json("explorer_latency", {
        "env": environment(), "fps_cap": a.fps, "threads": a.threads, "steps": a.steps, "rounds": a.rounds,
        "load_average_1min": os.getloadavg()[0], "cpu_count": os.cpu_count(), "input": inputs, "table": table,
        "sessions": raw})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
