"""Compile the Triton kernels for an NVIDIA GPU target without a GPU (Triton's ahead-of-time path + its ptxas).

    python tests/triton_aot.py [sm]        # prints one line per kernel variant: registers, spills

Triton's CPU interpreter accepts programs the GPU compiler rejects (dot shapes, dtypes, layouts); this catches
those on machines without a GPU. Run by tests/test_kernels_triton.py in a subprocess: it must not see
`TRITON_INTERPRET` (the kernels must be decorated for compilation).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.pop("TRITON_INTERPRET", None)

import triton  # noqa: E402

try:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
except ImportError as e:  # the ahead-of-time API moves between Triton versions
    print(f"skip: this Triton has no ahead-of-time API ({e})")
    raise SystemExit(3) from None

from kernels import triton_bias_act as tba  # noqa: E402
from kernels import triton_filtered_lrelu as tfl  # noqa: E402
from kernels import triton_upfirdn2d as tup  # noqa: E402

TYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def _signature(fn, consts: dict, dtype: str) -> dict[str, str]:
    sig = {}
    for name in fn.arg_names:
        if name in consts:
            sig[name] = "constexpr"
        elif name == "s_ptr":
            sig[name] = "*i8"
        elif name == "c_ptr":
            sig[name] = "*fp32"
        elif name.endswith("_ptr"):
            sig[name] = "*" + TYPES[dtype]
        elif name in ("slope", "gain", "clamp", "alpha"):
            sig[name] = "fp32"
        else:
            sig[name] = "i32"
    return sig


def compile_variant(fn, consts: dict, dtype: str, num_warps: int, arch: int) -> str:
    compiled = triton.compile(ASTSource(fn=fn, signature=_signature(fn, consts, dtype), constexprs=consts),
                              target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})
    assert compiled.asm.get("cubin"), "no cubin"
    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    info = ""
    if ptxas.exists():
        with tempfile.TemporaryDirectory() as tmp:
            ptx = Path(tmp) / "k.ptx"
            ptx.write_text(compiled.asm["ptx"])
            out = subprocess.run([str(ptxas), "-v", f"--gpu-name=sm_{arch}a" if arch >= 90 else f"--gpu-name=sm_{arch}",
                                  str(ptx), "-o", str(Path(tmp) / "k.cubin")], capture_output=True, text=True)
            info = " | ".join(line.split(":", 1)[-1].strip() for line in out.stderr.splitlines()
                              if "registers" in line or "spill" in line)
    return info


def main() -> None:
    arch = int(sys.argv[1]) if len(sys.argv) > 1 else 90
    # One tile plan of a 2x/2x generator layer (12-tap filters), in every mode; the other kernels' variants.
    f = tuple(float(v) for v in range(1, 13))
    ax = tfl._axis(38, f, f, 2, 2, 7, 6, False)
    fused = [(tfl.plan(ax, ax), {"MODE": 0, "HAS_BIAS": True, "HAS_CLAMP": True, "WRITE_SIGNS": False}),
             (tfl.plan(ax, ax), {"MODE": 0, "HAS_BIAS": True, "HAS_CLAMP": True, "WRITE_SIGNS": True}),
             (tfl.plan(ax.transposed(), ax.transposed()),
              {"MODE": 1, "HAS_BIAS": False, "HAS_CLAMP": False, "WRITE_SIGNS": False})]
    for dtype in ("float16", "bfloat16", "float32"):
        for (py, px), flags in fused:
            consts = dict(flags, IBY=py.block_in, IBX=px.block_in, MBY=py.block_mid, MBX=px.block_mid,
                          OBY=py.block_out, OBX=px.block_out, PRECISION="tf32x3" if dtype == "float32" else "ieee")
            info = compile_variant(tfl._fused_kernel, consts, dtype, 4, arch)
            print(f"ok filtered_lrelu {dtype} {flags} {info}", flush=True)
    for fw, fh, up, down in ((12, 1, 2, 1), (12, 12, 1, 2)):
        consts = dict(UPX=up, UPY=1 if fh == 1 else up, DOWNX=down, DOWNY=down, FW=fw, FH=fh, BH=tup.BLOCK_H,
                      BW=tup.BLOCK_W)
        print(f"ok upfirdn2d {consts} {compile_variant(tup._upfirdn2d_kernel, consts, 'float16', 4, arch)}")
    for act, grad in ((0, False), (2, True)):
        consts = dict(ACT=act, HAS_BIAS=True, HAS_CLAMP=True, GRAD=grad, WIDE=False, BLOCK=tba.BLOCK)
        print(f"ok bias_act {consts} {compile_variant(tba._bias_act_kernel, consts, 'bfloat16', 4, arch)}")


if __name__ == "__main__":
    main()
