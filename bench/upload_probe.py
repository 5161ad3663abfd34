"""One explorer window, fed synthetic frames of each size: what a new frame and an idle UI frame cost the UI thread.

Run by `bench/explorer_latency.py --upload` as a script (not a module), once per checkout and frame path,
with DISPLAY set and PYTHONPATH naming the checkout to measure, so the same probe measures this
checkout and an older one (`--before`): it only uses what both have, `Explorer.build_ui()`, `tick()` and
the frame hand-over (`_incoming` here, `_upload(frame)` before the OpenGL path existed).

Per UI frame it times the app's own work, `tick()` + `dpg.render_dearpygui_frame()`, never the frame cap's
sleep: with a new frame every UI frame (streaming), and with none (idle), and idle with the 1x1 placeholder
before any frame (base). Both wall time and the process's CPU time (all its threads, Mesa's rasteriser
threads included): on a shared machine other processes stretch the wall time, much less the CPU time.
Prints a JSON list, one object per size.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np
import torch

from explorer.app import Explorer
from explorer.renderer import Frame, RenderSettings


def make_frames(size: int, count: int, device: str) -> list[Frame]:
    """`count` distinct random frames in the format this checkout's renderer hands to the UI."""
    names = {f.name for f in fields(Frame)}
    gen = torch.Generator(device=device).manual_seed(size)
    frames = []
    for _ in range(count):
        rgba = torch.randint(0, 256, (size, size, 4), dtype=torch.uint8, device=device, generator=gen)
        rgba[..., 3] = 255
        host = rgba.cpu().numpy()
        extra = {}
        if "rgba" in names:
            extra["rgba"] = host
        if "device_rgba" in names and device != "cpu":
            extra["device_rgba"] = rgba
        if "rgb" in names:  # older renderers hand over what the raw texture path takes (now a Frame property)
            extra["rgb"] = (host[..., :3].astype(np.float32) / 255.0).copy()
        frames.append(Frame(settings=RenderSettings(), generation=0, render_ms=0.0, **extra))
    if device != "cpu":
        torch.cuda.synchronize()
    return frames


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="64,256,1024")
    p.add_argument("--path", default="auto", help="--frame-path of the explorer ('' for a checkout without one)")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--device", default="cpu", help="where the synthetic frames live (cuda: CUDA tensors)")
    a = p.parse_args(argv)

    dpg.create_context()
    kwargs = {"device": "cpu", "threaded": False, "torch_threads": 1,
              "recent_file": Path(tempfile.mkdtemp()) / "recent.json"}
    new_api = "frame_path" in inspect.signature(Explorer.__init__).parameters
    if new_api:
        kwargs["frame_path"] = a.path or "auto"
    app = Explorer(**kwargs)
    app.build_ui()
    dpg.create_viewport(title="upload probe", width=1600, height=1000, x_pos=0, y_pos=0)
    dpg.setup_dearpygui()
    dpg.show_viewport()
    app._fit_main_window()
    dpg.render_dearpygui_frame()
    if new_api:
        app.view.enable_gl()

    def ui_frame(frame: Frame | None) -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        if frame is not None:
            if new_api:
                app._incoming = frame
            else:
                app._upload(frame)
        app.tick()
        dpg.render_dearpygui_frame()
        return (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000

    base = [ui_frame(None) for _ in range(a.frames)]
    results = [measure(app, ui_frame, size, a, base, new_api) for size in map(int, a.sizes.split(","))]
    if new_api:
        app.view.close()
    app.renderer.close()
    dpg.destroy_context()
    print(json.dumps(results))
    return 0


def measure(app: Explorer, ui_frame: Callable[[Frame | None], tuple[float, float]], size: int,
            a: argparse.Namespace, base: list[tuple[float, float]], new_api: bool) -> dict:
    frames = make_frames(size, 4, a.device)
    ui_frame(frames[0])
    for _ in range(10):  # a texture of a new size takes a UI frame or two to be ready
        if getattr(app, "_incoming", None) is None:
            break
        ui_frame(None)
    if new_api:
        app.view.upload_ms.clear()  # this size's uploads only
    streaming = [ui_frame(frames[i % len(frames)]) for i in range(a.frames)]
    idle = [ui_frame(None) for _ in range(a.frames)]

    out = {"size": size, "requested_path": a.path, "device": a.device, "frames": a.frames}
    for name, samples in (("base", base), ("streaming", streaming), ("idle", idle)):
        out[f"{name}_ms"] = median([wall for wall, _ in samples])
        out[f"{name}_cpu_ms"] = median([cpu for _, cpu in samples])
    # A new frame's extra cost to the UI: a UI frame that brings one minus a UI frame with nothing to show.
    out["upload_ms"] = out["streaming_ms"] - out["base_ms"]
    out["upload_cpu_ms"] = out["streaming_cpu_ms"] - out["base_cpu_ms"]
    out["samples"] = {"streaming": streaming, "idle": idle}
    if new_api:
        view = app.view.summary()
        out.update(path=view["frame_path"], gl=view["gl"], gl_upload_ms=view["upload_ms_median"],
                   fallback_reason=view["fallback_reason"])
        shown = app.view.read_back()
        last = frames[(a.frames - 1) % len(frames)]
        out["texture_matches_frame"] = None if shown is None else bool(np.array_equal(shown, last.rgba))
    else:
        out.update(path="before (raw)", gl={}, gl_upload_ms=None, fallback_reason="", texture_matches_frame=None)
    if a.device != "cpu":
        d2h = []
        src = frames[0].device_rgba if new_api and frames[0].device_rgba is not None else None
        if src is not None:
            pinned = torch.empty(src.shape, dtype=torch.uint8, pin_memory=True)
            for _ in range(20):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                pinned.copy_(src, non_blocking=True)
                torch.cuda.synchronize()
                d2h.append((time.perf_counter() - t0) * 1000)
        out["d2h_ms"] = median(d2h)  # what the host path's worker pays per frame to get it off the GPU
    return out


if __name__ == "__main__":
    sys.exit(main())
