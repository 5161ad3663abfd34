"""How frames reach the explorer's screen: a new frame's UI-thread cost and UI fps per frame path and size.

Synthetic frames (no generator): bench/upload_probe.py runs one real explorer window per frame path
(`--frame-path` of the app) and feeds it random frames of each size (64^2, 256^2, 1024^2 by default),
timing the app's own work per UI frame (tick + draw, wall and process CPU time): while every UI frame
brings a new frame, and idle. Reported per path and size:

- new_frame: a UI frame that brings a new frame minus an idle UI frame drawing a frame of that size;
- gl_call: the upload call alone (the OpenGL paths);
- idle: a UI frame with nothing new (the raw-texture path re-uploads in every one of them);
- UI fps streaming / idle (without the frame cap); exact: the texture read back equals the last frame.

`--before DIR` runs the same probe against another checkout (e.g. `git archive main` unpacked in a folder),
interleaved with this one over `--rounds`, so both see the same load. `--device cuda` makes the frames CUDA
tensors (the CUDA-GL path on NVIDIA; bench/device_gl.sh runs this on a GPU machine without a display).

    python -m bench.frame_upload [--sizes 64,256,1024] [--paths auto,gl-pbo,raw] [--before DIR]
        [--rounds 3] [--frames 60] [--device cpu|cuda] [--display :N] [--json-out F]
    (also: python -m bench.explorer_latency --upload ...)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from bench.common import environment, print_table, start_xvfb, write_json

REPO = Path(__file__).resolve().parents[1]


GL_PATHS = ("gl", "gl-pbo", "cuda-gl")


def summarize_upload(results: dict[tuple[str, str, int], list[dict]], sizes: list[int],
                     runs: list[tuple[str, Path, str]], before: str | None) -> tuple[list[dict], list[dict], dict]:
    """Per configuration: medians over rounds; the ratios the issue asks for.

    A new frame's cost: its UI frame minus an idle UI frame that draws a frame of the same size. The idle frame
    of a GL path is that (its texture is drawn, never re-uploaded): a GL path is measured against its own idle
    frames. A raw texture is re-uploaded in every UI frame, new frame or not, so a raw path is measured
    against the first GL path's idle frames of the same round and size: the difference *is* its upload.
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
        bases = [r if r["path"] in GL_PATHS else draw_base(size, k) for k, r in enumerate(rs)]
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
           "--path", path, "--frames", str(frames), "--device", device]
    out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:  # e.g. no GLX on a GPU machine's display: the other paths may still run
        raise RuntimeError(f"upload probe {path or 'default'} of {repo} exited {out.returncode}:\n"
                           f"{out.stderr[-3000:]}")
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
    errors: list[str] = []
    try:
        for _ in range(a.rounds):  # rounds interleave every configuration, so load changes hit all alike
            for label, repo, path in runs:
                try:
                    probe = run_probe(repo, display, sizes, path, a.frames, a.device)
                except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                    errors.append(str(e))
                    print(e, flush=True)
                    continue
                for r in probe:
                    results.setdefault((label, path, r["size"]), []).append(r)
                    print(f"  {label} {r['path']} {r['size']}: UI frame with a new frame {r['streaming_ms']:.2f} ms "
                          f"(cpu {r['streaming_cpu_ms']:.2f}), idle {r['idle_ms']:.2f} ms (cpu "
                          f"{r['idle_cpu_ms']:.2f}), GL call {r['gl_upload_ms'] or 0:.2f} ms", flush=True)
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
               "summary": summary, "errors": errors, "configs": configs}
    path = write_json("explorer_upload", payload)
    print(f"wrote {path}")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(payload, indent=2))
        print(f"wrote {a.json_out}")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="64,256,1024", help="frame sizes")
    p.add_argument("--paths", default="auto,gl-pbo,raw", help="frame paths of this checkout (auto, gl, gl-pbo, raw)")
    p.add_argument("--before", help="also measure this (older) checkout")
    p.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    p.add_argument("--frames", type=int, default=60, help="UI frames per measurement")
    p.add_argument("--device", default="cpu", help="where the synthetic frames live (cuda: CUDA tensors)")
    p.add_argument("--display", help="use this X display instead of starting an Xvfb")
    p.add_argument("--json-out", help="also write the JSON here")
    return upload_bench(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
