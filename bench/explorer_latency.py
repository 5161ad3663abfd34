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

    python -m bench.explorer_latency [--res 64] [--steps 20] [--fps 60] [--frame-path auto]

`--upload` measures how frames reach the screen instead, per frame path and size, with synthetic frames
(bench/upload_probe.py in one explorer window per path and size): the UI-thread cost of a new frame
(`upload`: a UI frame that brings a new frame minus one with nothing to show), the GL call alone, and
the UI frame time while frames stream and while idle (as UI fps without the frame cap). `--before DIR`
adds the same probe run against an older checkout (e.g. `git worktree add --detach /tmp/sgxl-before
main`), interleaved with this one, so both are measured under the same load.

    python -m bench.explorer_latency --upload [--sizes 64,256,1024] [--paths auto,gl-pbo,raw]
                                     [--before DIR] [--rounds 3] [--device cpu|cuda] [--json-out F]
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

from bench.common import environment, print_table, write_json
from core.io.checkpoint import save_checkpoint
from core.networks.generator import Generator
from core.networks.presets import preset_config

REPO = Path(__file__).resolve().parents[1]
# How often the state file is re-read. The times come from the app's own clock, so this only sets how soon
# the next step starts; polling every 2 ms (as before) cost the 2-core machine CPU the app's renderer needed.
POLL_S = 0.01


def start_xvfb() -> tuple[subprocess.Popen, str]:
    for n in range(150, 250):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            break
    proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if time.time() > deadline:
            raise RuntimeError("Xvfb did not start")
        time.sleep(0.05)
    return proc, f":{n}"


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


GL_PATHS = ("gl", "gl-pbo", "cuda-gl")


def summarize_upload(results: dict[tuple[str, str, int], list[dict]], sizes: list[int],
                     runs: list[tuple[str, Path, str]], before: str | None) -> tuple[list[dict], list[dict], dict]:
    """Per configuration: medians over rounds; the ratios the issue asks for.

    A new frame's cost: its UI frame minus an idle UI frame that draws a frame of the same size. The idle frame
    of a GL path is that (its texture is drawn, never re-uploaded); a raw texture is re-uploaded in every UI
    frame, new frame or not, so on the raw path the difference to the GL path's idle frame *is* its upload.
    Drawing a bigger texture costs more by itself (llvmpipe samples 4 MB instead of 16 kB), which is why the
    reference is the same size, and why even the GL path's idle frame grows a little with size.
    """
    def draw_base(size: int, rnd: int) -> dict | None:
        for label, _, path in runs:
            rs = results.get((label, path, size), [])
            if len(rs) > rnd and rs[rnd]["path"] in GL_PATHS:
                return rs[rnd]
        return None

    def med(xs: list[float | None]) -> float | None:
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else None

    table, configs = [], []
    for (label, path, size), rs in results.items():
        bases = [draw_base(size, k) for k in range(len(rs))]
        m = {"new_frame_cpu_ms": med([r["streaming_cpu_ms"] - b["idle_cpu_ms"] for r, b in zip(rs, bases) if b]),
             "new_frame_ms": med([r["streaming_ms"] - b["idle_ms"] for r, b in zip(rs, bases) if b]),
             "gl_call_ms": med([r["gl_upload_ms"] for r in rs]),
             **{k: med([r.get(k) for r in rs]) for k in ("streaming_ms", "streaming_cpu_ms", "idle_ms", "idle_cpu_ms",
                                                          "base_ms", "base_cpu_ms", "d2h_ms")}}
        table.append({"checkout": label, "path": rs[-1]["path"], "size": f"{size}x{size}",
                      **{k: None if v is None else round(v, 2) for k, v in m.items()},
                      "ui_fps_streaming": round(1000 / m["streaming_ms"], 1),
                      "ui_fps_idle": round(1000 / m["idle_ms"], 1), "exact": rs[-1]["texture_matches_frame"]})
        configs.append({"checkout": label, "requested_path": path, "size": size, "median": m, "runs": rs})
    by = {(c["checkout"], c["requested_path"], c["size"]): c["median"] for c in configs}
    ref = ("before", "") if before else ("after", "raw")
    summary = {}
    for label, _, path in runs:
        name = f"{label}/{path or 'default'}"
        if (label, path) != ref:
            for size in sizes:
                new, old = by.get((label, path, size)), by.get((*ref, size))
                if new and old and new["new_frame_cpu_ms"] is not None and (old["new_frame_cpu_ms"] or 0) > 0:
                    summary[f"{name} {size}: new frame cpu ms / {'/'.join(ref) or 'before'}'s"] = round(
                        new["new_frame_cpu_ms"] / old["new_frame_cpu_ms"], 3)
        lo, hi = by.get((label, path, min(sizes))), by.get((label, path, max(sizes)))
        if lo and hi:
            for k in ("idle_cpu_ms", "idle_ms"):
                summary[f"{name}: {k} at {max(sizes)} - at {min(sizes)}"] = round(hi[k] - lo[k], 2)
    return table, configs, summary


def run_probe(repo: Path, display: str, sizes: list[int], path: str, frames: int, device: str) -> list[dict]:
    """One bench/upload_probe.py run against checkout `repo` (its own explorer code on PYTHONPATH)."""
    env = dict(os.environ, DISPLAY=display, PYTHONPATH=str(repo))
    env.pop("WAYLAND_DISPLAY", None)
    cmd = [sys.executable, str(REPO / "bench" / "upload_probe.py"), "--sizes", ",".join(map(str, sizes)),
           "--path", path,
           "--frames", str(frames), "--device", device]
    out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"upload probe failed ({' '.join(cmd[2:])}):\n{out.stderr[-3000:]}")
    results = json.loads(out.stdout.strip().splitlines()[-1])
    for r in results:
        r["log"] = out.stderr.strip().splitlines()[-5:]  # e.g. the fallback's one line
    return results


def upload_bench(a: argparse.Namespace) -> int:
    sizes = [int(x) for x in a.sizes.split(",")]
    runs = [("after", REPO, path) for path in a.paths.split(",")]
    if a.before:
        runs.append(("before", Path(a.before).resolve(), ""))
    xvfb = None
    display = a.display
    if not display:
        if shutil.which("Xvfb") is None:
            print("skipped: Xvfb is not installed (apt-get install xvfb)")
            return 0
        xvfb, display = start_xvfb()
    results: dict[tuple[str, str, int], list[dict]] = {}
    try:
        for _ in range(a.rounds):  # rounds interleave every configuration, so load changes hit all alike
            for label, repo, path in runs:
                for r in run_probe(repo, display, sizes, path, a.frames, a.device):
                    results.setdefault((label, path, r["size"]), []).append(r)
                    print(f"  {label} {r['path']} {r['size']}: upload {r['upload_ms']:.2f} ms "
                          f"(cpu {r['upload_cpu_ms']:.2f}, GL call {r['gl_upload_ms'] or 0:.2f}), idle "
                          f"{r['idle_ms']:.2f} ms (cpu {r['idle_cpu_ms']:.2f})", flush=True)
    finally:
        if xvfb is not None:
            xvfb.terminate()

    table, configs, summary = summarize_upload(results, sizes, runs, a.before)
    gl = next((r["gl"] for rs in results.values() for r in rs if r.get("gl")), {})
    print(f"frame upload, synthetic frames on {a.device}, {a.rounds} round(s) x {a.frames} UI frames, GL "
          f"{gl.get('renderer', '?')} ({gl.get('version', '?')}), load average {os.getloadavg()[0]:.2f}")
    print_table(table, ["checkout", "path", "size", "new_frame_cpu_ms", "new_frame_ms", "gl_call_ms", "idle_cpu_ms",
                        "idle_ms", "ui_fps_streaming", "ui_fps_idle", "d2h_ms", "exact"])
    print("new_frame: a UI frame that brings a new frame minus an idle UI frame drawing a frame of that size (the "
          "GL path's idle frame, same round); idle: a UI frame with nothing new; cpu: the process's CPU time")
    for k, v in summary.items():
        print(f"{k}: {v}")
    payload = {"env": environment(), "gl": gl, "device": a.device, "rounds": a.rounds, "frames": a.frames,
               "load_average_1min": os.getloadavg()[0], "cpu_count": os.cpu_count(), "table": table,
               "summary": summary, "configs": configs}
    path = write_json("explorer_upload", payload)
    print(f"wrote {path}")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(payload, indent=2))
        print(f"wrote {a.json_out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--fps", type=int, default=60, help="the explorer's frame cap (default 60, as shipped)")
    p.add_argument("--threads", type=int, help="the explorer's torch threads (default: its own choice)")
    p.add_argument("--ckpt", help="checkpoint to open (default: a random 'tiny' generator at --res), e.g. "
                   "assets/demo.sgxl")
    p.add_argument("--frame-path", default="auto", help="the explorer's --frame-path (auto, gl, gl-pbo, raw)")
    p.add_argument("--upload", action="store_true", help="measure frame uploads per path and size instead")
    p.add_argument("--sizes", default="64,256,1024", help="--upload: frame sizes")
    p.add_argument("--paths", default="auto,gl-pbo,raw", help="--upload: frame paths of this checkout")
    p.add_argument("--before", help="--upload: also measure this (older) checkout")
    p.add_argument("--rounds", type=int, default=3, help="--upload: interleaved repetitions")
    p.add_argument("--frames", type=int, default=60, help="--upload: UI frames per measurement")
    p.add_argument("--device", default="cpu", help="--upload: where synthetic frames live (cuda: CUDA tensors)")
    p.add_argument("--display", help="--upload: use this X display instead of starting an Xvfb")
    p.add_argument("--json-out", help="--upload: also write the JSON here")
    a = p.parse_args(argv)
    if a.upload:
        return upload_bench(a)
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
                            "--fps", str(a.fps), "--frame-path", a.frame_path, "--test-state-file", str(state),
                            "--recent-file",
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
    view = s_end.get("frame_view", {})
    if view:
        print(f"frames via {view['frame_path']}, upload {view['upload_ms_median']:.2f} ms per new frame (median), "
              f"UI work {s_end['ui_work_ms']:.1f} ms per UI frame (median), GL {view['gl'].get('renderer', '-')}")
    path = write_json("explorer_latency", {
        "env": environment(), "resolution": a.res, "fps_cap": a.fps, "threads": a.threads, "steps": a.steps,
        "load_average_1min": os.getloadavg()[0], "cpu_count": os.cpu_count(),
        "ui_fps_dragging": drag_fps, "ui_fps_idle": idle_fps, "frame_view": view,
        "ui_work_ms": s_end.get("ui_work_ms"),
        "latency_ms": {k: {"median": statistics.median(v), "p95": percentile(v, 0.95), "samples": v}
                       for k, v in rows.items()},
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
