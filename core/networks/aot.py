"""The synthesis network compiled ahead of time for CPU frames (PyTorch's AOTInductor).

On a CPU, a batch-1 frame of a small model spends about a third of its time outside the convolutions: dozens of
small elementwise ops per layer (the modulation and demodulation of the weights, bias, leaky ReLU and clamp, layout
copies), each a separate pass and a trip through Python. AOTInductor traces `SynthesisNetwork.forward` once
(`torch.export`), fuses those ops into generated C++ loops around the same oneDNN convolutions, and writes a
package that loads in milliseconds. Measured on the 2-core test machine, the bundled 64x64 demo: 25-29 ms per
frame against 33-43 ms eager, one after the other in one process; the build takes 20-30 s of CPU once per
checkpoint.

The package computes the same function as the eager network up to float rounding (the fused loops sum in another
order: largest difference 4e-6 on outputs in [-1, 1]; a uint8 pixel can differ by one where it lies on a rounding
boundary). It is built for one batch size (1), float32, CPU, and for the StyleGAN-XL / StyleGAN3 synthesis only;
everything else keeps running eagerly. Building needs a C++ compiler (`g++`, or `$CXX`); loading a built package
does not. A package holds code only (2 MB for the demo): it runs on the weights of the network it is loaded for.
Packages are cached per checkpoint file (path, size, modification time), torch version and CPU in
`$XDG_CACHE_HOME/sgxl/aot` (default `~/.cache/sgxl/aot`).

    python -m core.networks.aot --ckpt CKPT [--out PACKAGE]   # build (the explorer runs this in the background)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from core.errors import SGXLError
from core.networks.synthesis import SynthesisNetwork

PACKAGE_SUFFIX = ".pt2"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sgxl" / "aot"


def compiler() -> str | None:
    """The C++ compiler AOTInductor would call ($CXX, else g++), or None when it is not installed."""
    return shutil.which(os.environ.get("CXX", "g++"))


def supports(G: torch.nn.Module) -> bool:
    """A generator whose synthesis this module compiles: the StyleGAN-XL / StyleGAN3 one."""
    return isinstance(getattr(G, "synthesis", None), SynthesisNetwork)


def _cpu_id() -> str:
    """What the generated code is specialised to: the CPU model and its instruction-set flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor() or platform.machine()


def package_path(ckpt: str | Path, root: Path | None = None, threads: int = 1) -> Path:
    """Where the package of checkpoint `ckpt` built for `threads` CPU threads lives (it may not be built yet)."""
    ckpt = Path(ckpt).resolve()
    st = ckpt.stat()
    ident = "\n".join([str(ckpt), str(st.st_size), str(st.st_mtime_ns), torch.__version__, _cpu_id()])
    digest = hashlib.sha256(ident.encode()).hexdigest()[:24]
    return (root or cache_dir()) / f"{ckpt.stem}-{digest}-t{threads}{PACKAGE_SUFFIX}"


class _SynthesisWithTransform(torch.nn.Module):
    """`synthesis(ws, transform)` with the transform as a tensor input (None = the network's own buffer)."""

    def __init__(self, synthesis: SynthesisNetwork) -> None:
        super().__init__()
        self.synthesis = synthesis

    def forward(self, ws: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
        return self.synthesis(ws, transform=transform)


def build(G: torch.nn.Module, out: str | Path, threads: int = 1) -> Path:
    """Compile `G.synthesis` for batch-1 float32 CPU frames into the package `out` (written atomically).

    `threads`: how many threads the generated loops use. The package links the system's OpenMP runtime, not the
    one inside torch, so torch's thread setting does not reach it at run time: the count is fixed here (with 1,
    no parallel regions at all). With the default of that runtime (every core), its spinning workers took the
    core the explorer's UI needed: previews 4.5 ms slower, measured.
    """
    if not supports(G):
        raise SGXLError("only the StyleGAN-XL / StyleGAN3 synthesis network can be compiled ahead of time")
    if compiler() is None:
        raise SGXLError("building a compiled synthesis needs a C++ compiler (g++, or set $CXX)")
    from torch._inductor import aoti_compile_and_package

    syn = G.synthesis.to("cpu").eval()
    ws = torch.zeros([1, syn.num_ws, syn.w_dim])
    transform = syn.input.transform.clone()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=PACKAGE_SUFFIX, dir=out.parent)
    os.close(fd)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)  # what Inductor's code generation reads
    try:
        with torch.no_grad():
            exported = torch.export.export(_SynthesisWithTransform(syn), (ws, transform))
        # No weights in the package: `load` hands it the network's own (a package stays small, even for a
        # 1024x1024 model whose weights are hundreds of MB).
        aoti_compile_and_package(exported, package_path=tmp,
                                 inductor_configs={"aot_inductor.package_constants_in_so": False})
        os.replace(tmp, out)  # a reader never sees a half-written package
    finally:
        torch.set_num_threads(torch_threads)
        Path(tmp).unlink(missing_ok=True)
    return out


def load(path: str | Path, synthesis: SynthesisNetwork) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """The package at `path` as `run(ws [1, num_ws, w_dim], transform [3, 3] | None) -> image [1, C, H, W]`.

    Loaded with torch's C++ package loader itself, not `torch._inductor.aoti_load_package`: importing
    `torch._inductor` imports Triton, whose bundled LLVM crashes a process in which Mesa's software OpenGL
    (llvmpipe, its own LLVM) already runs - the explorer's, under Xvfb. The package takes its inputs flat.
    """
    loader_class = getattr(getattr(torch._C, "_aoti", None), "AOTIModelPackageLoader", None)
    if loader_class is None:
        raise SGXLError(f"this torch build ({torch.__version__}) cannot load compiled packages")
    # (path, model name, run single-threaded, runners, device index: -1 = CPU)
    loader = loader_class(str(path), "model", False, 1, -1)
    # The package computes with the network's own parameters and buffers (user-managed: no second copy of the
    # weights, and always the weights of the model on screen), not with the copies written into it.
    named = {f"synthesis.{k}": v for k, v in [*synthesis.named_parameters(), *synthesis.named_buffers()]}
    fqns = loader.get_constant_fqns()
    unknown = [f for f in fqns if f not in named or named[f].device.type != "cpu"]
    if unknown:
        raise SGXLError(f"the compiled package does not fit this network ({unknown[0]})")
    loader.load_constants({f: named[f] for f in fqns}, False, True, True)
    own_transform = synthesis.input.transform

    def run(ws: torch.Tensor, transform: torch.Tensor | None = None) -> torch.Tensor:
        if ws.shape != (1, synthesis.num_ws, synthesis.w_dim):
            raise ValueError(f"the compiled synthesis takes ws of shape [1, {synthesis.num_ws}, {synthesis.w_dim}]")
        t = own_transform if transform is None else transform.to(torch.float32)
        (image,) = loader.boxed_run([ws.to(torch.float32).contiguous(), t.contiguous()])
        return image

    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.networks.aot", description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True, help="checkpoint (.sgxl or official .pkl)")
    p.add_argument("--out", help="package path (default: the cache entry of this checkpoint)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads the package's own loops use (default 1, as the explorer renders on 2 cores)")
    p.add_argument("--low-priority", action="store_true", help="run at the lowest CPU priority (the explorer's "
                   "background build: the window and its renders keep the cores)")
    a = p.parse_args(argv)
    if a.low_priority and hasattr(os, "nice"):
        os.nice(19)
    from core.io.checkpoint import load_checkpoint

    try:
        G = load_checkpoint(a.ckpt, device="cpu").generator
        out = build(G, a.out or package_path(a.ckpt, threads=a.threads), threads=a.threads)
    except SGXLError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
