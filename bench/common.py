"""Shared benchmark plumbing: timing medians, environment facts, table printing and JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"  # SGXL_BENCH_RESULTS=<dir> writes elsewhere (device_check.sh)


def environment() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    return {"torch": torch.__version__, "device": device, "threads": torch.get_num_threads(), "commit": commit,
            "python": platform.python_version()}


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, cuda: bool = False) -> float:
    """Median wall time of `fn` after `warmup` untimed calls; on CUDA timed with events around each call
    (the GPU time from the first launch to the last kernel's end, host launch overhead included)."""
    for _ in range(warmup):
        fn()
    times = []
    if cuda:
        torch.cuda.synchronize()
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        return statistics.median(times)
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def reset_peak_memory() -> None:
    """Start a new GPU memory peak (no-op without CUDA)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> float | None:
    """Peak GPU memory allocated by tensors since `reset_peak_memory()` (MiB), or None without CUDA."""
    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)))


def write_json(name: str, payload: dict) -> Path:
    folder = Path(os.environ.get("SGXL_BENCH_RESULTS") or RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def start_xvfb() -> tuple[subprocess.Popen, str]:
    """A private Xvfb server on the first free display number from :150 (the GUI benchmarks' own screen)."""
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
