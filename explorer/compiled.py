"""Exact CPU frames from the ahead-of-time compiled synthesis network (`core.networks.aot`).

When a checkpoint opens on the CPU, its compiled package is loaded if this machine built one before (it loads in
milliseconds); otherwise a background process at the lowest CPU priority builds it (15-30 s of CPU once per
checkpoint, needs a C++ compiler) and it is loaded when done. Until then, and wherever it cannot be used (no
compiler, CUDA, a StyleGAN2 checkpoint, a layer view, previews), frames render eagerly as before. The explorer
shows the state in its Performance panel; `--compiled off` (or SGXL_COMPILED=off) never builds or loads one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import torch

from core.networks import aot

REPO_ROOT = Path(aot.__file__).resolve().parents[2]  # so the build process imports this very `core`


def check_against_eager(run: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], G: torch.nn.Module,
                        tolerance: float = 1e-3) -> None:
    """One frame both ways (random ws, fixed seed): a package that computes something else is refused."""
    syn = G.synthesis
    ws = torch.randn([1, syn.num_ws, syn.w_dim], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = syn(ws)
    got = run(ws, None)
    if got.shape != want.shape or not (got - want).abs().max().item() <= tolerance:
        raise ValueError("the compiled synthesis does not reproduce the network")


class CompiledSynthesis:
    """The compiled synthesis of the renderer's current model: `run` once ready, else None; `state` says why.

    States: "off" (switched off), "unsupported" (not a CPU model of the StyleGAN-XL/3 family, or no checkpoint
    file), "unavailable: ..." (no C++ compiler), "building", "ready", "failed: ...". Thread-safe: the renderer's
    worker reads `run_for(generation)`; the build's waiter thread sets it.
    """

    def __init__(self, enabled: bool, cache: Path | None = None) -> None:
        self.enabled = enabled
        self.cache = cache
        self.state = "off"
        self._run: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None
        self._generation = -1
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def run_for(self, generation: int) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None:
        """The compiled synthesis if it is ready for the model of `generation`."""
        with self._lock:
            return self._run if generation == self._generation else None

    def start(self, G: torch.nn.Module, ckpt_path: str, device: str, generation: int) -> None:
        """Set up for a newly loaded model: load its package, or build it in the background first."""
        self.stop()
        with self._lock:
            self._run, self._generation = None, generation
            if not self.enabled:
                self.state = "off"
                return
            if device != "cpu" or not ckpt_path or not aot.supports(G):
                self.state = "unsupported"
                return
            try:
                package = aot.package_path(ckpt_path, self.cache)
            except OSError:
                self.state = "unsupported"
                return
        if package.exists():
            self._load(package, G, generation)
            return
        if aot.compiler() is None:
            with self._lock:
                self.state = "unavailable: no C++ compiler (g++ or $CXX) to build it"
            return
        log_path = package.with_suffix(".log")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                          os.environ.get("PYTHONPATH")])))
        try:
            package.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "w") as log:
                # The build lowers its own priority (a preexec_fn would run between fork and exec of this
                # multi-threaded process, which Python warns can deadlock).
                proc = subprocess.Popen([sys.executable, "-m", "core.networks.aot", "--ckpt", str(ckpt_path),
                                         "--out", str(package), "--low-priority"], stdout=log,
                                        stderr=subprocess.STDOUT, env=env)
        except OSError as e:  # a read-only or full cache folder must not keep the checkpoint from opening
            with self._lock:
                self.state = f"unavailable: cannot build in {package.parent} ({e.strerror or e})"
            return
        with self._lock:
            self._proc, self.state = proc, "building"
        threading.Thread(target=self._await_build, args=(proc, package, log_path, G, generation),
                         name="sgxl-aot-build", daemon=True).start()

    def _await_build(self, proc: subprocess.Popen, package: Path, log_path: Path, G: torch.nn.Module,
                     generation: int) -> None:
        code = proc.wait()
        if code == 0 and package.exists():
            self._load(package, G, generation)
            return
        with self._lock:
            if generation == self._generation:
                self.state = f"failed: the build exited with code {code} (log: {log_path})"

    def _load(self, package: Path, G: torch.nn.Module, generation: int) -> None:
        try:
            run = aot.load(package, G.synthesis)
            check_against_eager(run, G)
        except Exception as e:  # a package of another torch build or a damaged file: build it again next time
            package.unlink(missing_ok=True)
            with self._lock:
                if generation == self._generation:
                    self.state = f"failed: cannot load {package.name} ({type(e).__name__})"
            return
        with self._lock:
            if generation == self._generation:
                self._run, self.state = run, "ready"

    def stop(self) -> None:
        """End a build in progress (its package is written atomically, so nothing half-built remains)."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
