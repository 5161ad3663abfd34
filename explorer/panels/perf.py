"""Performance: render time, UI frame rate, how frames reach the screen (GL facts, upload time), memory, cache;
the preview switches.

The preview switches: "bf16" (on CPUs with native bfloat16, the renderer measures which layers run faster
in bf16 and uses them while the user drags), "skip the last stage's anti-aliasing" (its same-rate layers'
leaky ReLU without oversampling and low-pass, where measured faster) and "progressive" (previews while
dragging, the exact float32 frame when the input rests). A captured frame is always the exact one.
"""

from __future__ import annotations

import os
import statistics

import dearpygui.dearpygui as dpg
import torch

from explorer.panels.base import Panel


def process_memory_mb() -> float:
    """Resident memory of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


PATH_NOTES = {
    "gl": "uint8 RGBA -> glTexSubImage2D",
    "gl-pbo": "uint8 RGBA -> pixel-buffer object -> texture",
    "cuda-gl": "CUDA tensor -> GL buffer on the GPU -> texture",
    "raw": "float32 RGB raw texture, re-uploaded every UI frame",
}


def compiled_text(renderer) -> str:
    """One line on the compiled synthesis (explorer.compiled) for the Performance panel."""
    state, n = renderer.compiled.state, renderer.stats["compiled"]
    if state == "ready":
        return f"compiled synthesis (AOTInductor; {n} so far)"
    if state == "building":
        return "eager; compiling the synthesis in the background (once per checkpoint)"
    return f"eager (compiled synthesis: {state})"


class PerfPanel(Panel):
    key = "perf"
    title = "Performance"
    default_open = False

    def __init__(self, app) -> None:
        super().__init__(app)
        self._next_update = 0.0

    def build(self) -> None:
        dpg.add_text("", tag=self.tag("text"), wrap=390)
        dpg.add_text("UI frame time (ms), last 120 frames:", color=(170, 170, 170))
        # No label: a simple plot draws it right of a full-width plot, outside the panel.
        dpg.add_simple_plot(tag=self.tag("plot"), default_value=[0.0], height=60, width=-1)
        dpg.add_input_int(label="FPS cap", tag=self.tag("fps"), default_value=self.app.fps_cap, width=100,
                          min_value=1, max_value=240, min_clamped=True, max_clamped=True,
                          callback=self._on_fps)
        r = self.app.renderer
        dpg.add_checkbox(label="preview: bf16 where faster", tag=self.tag("bf16"), default_value=r.bf16_enabled,
                         callback=self._on_bf16)
        dpg.add_checkbox(label="preview: last stage without anti-aliasing", tag=self.tag("plain"),
                         default_value=r.plain_preview, callback=self._on_plain)
        dpg.add_checkbox(label="progressive: preview while dragging, exact at rest", tag=self.tag("progressive"),
                         default_value=r.progressive, callback=self._on_progressive)
        dpg.add_text("", tag=self.tag("preview"), wrap=LEFT_TEXT_WRAP)
        self._refresh_preview()

    def _on_fps(self, sender, value, user_data=None) -> None:
        self.app.fps_cap = int(value)

    def _on_bf16(self, sender, value, user_data=None) -> None:
        self.app.renderer.set_bf16(bool(value))
        self._refresh_preview()

    def _on_plain(self, sender, value, user_data=None) -> None:
        self.app.renderer.set_plain_preview(bool(value))
        self._refresh_preview()

    def _on_progressive(self, sender, value, user_data=None) -> None:
        self.app.renderer.set_progressive(bool(value))
        self._refresh_preview()

    def preview_state(self) -> dict:
        """The renderer's preview status as plain values (the Performance panel's text, tests)."""
        st = self.app.renderer.preview_status()
        plan = st.pop("plan")
        st["plan"] = None if plan is None else {"conv": sorted(plan.conv), "fir": sorted(plan.fir),
                                                "plain": sorted(plan.plain),
                                                "speedup": round(plan.predicted_speedup(), 3)}
        st["text"] = preview_text(st, plan)
        return st

    def _refresh_preview(self) -> None:
        st = self.preview_state()
        if dpg.does_item_exist(self.tag("preview")):
            dpg.set_value(self.tag("preview"), st["text"])
            # Nothing to switch on where the CPU has no native bf16 (or the model runs on CUDA).
            on_cpu = st["state"] != "unsupported"
            dpg.configure_item(self.tag("bf16"), enabled=on_cpu and st["bf16_support"] is not None)
            dpg.configure_item(self.tag("plain"), enabled=on_cpu)

    def summary(self) -> dict:
        app, r = self.app, self.app.renderer
        frame_ms = list(app.frame_times_ms)
        work_ms = list(app.work_times_ms)
        renders = list(app.render_times_ms)
        out = {
            "ui_fps": app.ui_fps,
            "ui_frame_ms": statistics.median(frame_ms) if frame_ms else 0.0,
            "ui_work_ms": statistics.median(work_ms) if work_ms else 0.0,
            **app.view.summary(),
            "render_ms_last": r.stats["last_render_ms"],
            "render_ms_median": statistics.median(renders) if renders else 0.0,
            "display_latency_ms": app.last_latency_ms,
            "device": r.device,
            "rss_mb": process_memory_mb(),
            "cache": r.cache_info(),
            "renders": r.stats["renders"], "cache_hits": r.stats["cache_hits"], "dropped": r.stats["dropped"],
            "compiled": {"state": r.compiled.state, "frames": r.stats["compiled"]},
        }
        if r.device == "cuda":
            out["cuda_mb"] = torch.cuda.memory_allocated() / 2**20
        return out

    def tick(self, now: float) -> None:
        if now < self._next_update:
            return
        self._next_update = now + 0.25
        s = self.summary()
        preview_ms = self.app.renderer.stats["last_preview_ms"]
        lines = [f"render {s['render_ms_last']:.1f} ms (median {s['render_ms_median']:.1f})"
                 + (f", preview {preview_ms:.1f} ms" if preview_ms else ""),
                 f"UI {s['ui_fps']:.1f} fps, frame {s['ui_frame_ms']:.1f} ms ({s['ui_work_ms']:.1f} ms of work)",
                 f"frames: {s['frame_path']} ({PATH_NOTES.get(s['frame_path'], '')})",
                 f"upload {s['upload_ms_last']:.2f} ms per new frame (median {s['upload_ms_median']:.2f})"
                 if s["frame_path"] != "raw" else "upload: inside every UI frame (raw texture)",
                 f"request -> frame on screen {s['display_latency_ms']:.0f} ms",
                 f"input wake: XInput 2 raw events, {self.app.input_wakes} wakes" if self.app.input_wake_note == ""
                 else f"input wake off ({self.app.input_wake_note}): input waits for the next UI frame",
                 latch_text(self.app.slider_latch, self.app.pointer_query_on),
                 f"exact frames: {compiled_text(self.app.renderer)}",
                 f"device {s['device']}, torch threads {torch.get_num_threads()}",
                 f"memory {s['rss_mb']:.0f} MB" + (f", CUDA {s['cuda_mb']:.0f} MB" if "cuda_mb" in s else ""),
                 f"cache {s['cache']['entries']} frames / {s['cache']['mb']:.2f} MB, hits {s['cache_hits']}, "
                 f"renders {s['renders']}, dropped {s['dropped']}"]
        gl = s["gl"]
        if gl:
            lines += [f"GL vendor {gl['vendor']}", f"GL renderer {gl['renderer']}", f"GL version {gl['version']}"]
        if s["fallback_reason"]:
            lines.append(f"OpenGL path off: {s['fallback_reason']}")
        dpg.set_value(self.tag("text"), "\n".join(lines))
        dpg.set_value(self.tag("plot"), list(self.app.frame_times_ms) or [0.0])
        self._refresh_preview()


def latch_text(latch, pointer_known: bool) -> str:
    """One line on slider latching (explorer.slider_latch) for the panel."""
    if not pointer_known:
        return "slider latching off (needs X11 to ask where the pointer is): a move shows a UI frame after it is read"
    if not latch.enabled:
        return f"slider latching turned off: {latch.misses} predictions the slider did not take"
    return f"slider latching: {latch.latched} moves applied before the frame that read them, {latch.misses} misses"


LEFT_TEXT_WRAP = 390


def preview_text(st: dict, plan) -> str:
    """Two or three lines on previews: what runs while dragging, and this CPU's bf16."""
    state = st["state"]
    if state == "unsupported":
        head = "previews: none on CUDA (the exact frame every time)"
    elif state == "off":
        head = "previews: off (the exact frame every time)"
    elif state in ("waiting", "measuring"):
        head = "previews: measuring which layers are faster ..."
    elif state == "unavailable":
        head = "previews: not for this model family (no per-layer access)"
    elif state == "no gain":
        head = "previews: measured, nothing switched on is faster here"
    else:
        head = f"previews: {plan.summary()}"
    support = st["bf16_support"]
    bf16 = (f"bf16: {support}" + ("" if st["bf16"] else ", switched off")) if support else \
        "bf16: not on this CPU (no AVX512-BF16 or AMX)"
    return "\n".join([head, bf16] + ([] if st["progressive"] else ["progressive off: every frame exact"]))
