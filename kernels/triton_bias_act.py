"""`bias_act` as one Triton kernel: `clamp(act(x + b) * gain)` in a single pass over x (fp32 arithmetic).

Same contract as `kernels.reference.bias_act` for the activations the networks use (linear, relu, lrelu);
tanh/sigmoid go to the reference. The backward pass is a second kernel, `dy * act'(x + b) * gain` with the
clamp's mask, wrapped in its own autograd function so that gradients of any order work (the official op's
contract): that function is linear in `dy`, and for these activations the derivative is piecewise constant,
so its own backward is itself and there is no second-order term.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels import reference

ACT_CODES = {"linear": 0, "relu": 1, "lrelu": 2}
BLOCK = 1024


@triton.jit(do_not_specialize=["n", "channels", "inner", "alpha", "gain", "clamp"])
def _bias_act_kernel(x_ptr, b_ptr, y_ptr, n, channels, inner, alpha, gain, clamp,
                     ACT: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_CLAMP: tl.constexpr, GRAD: tl.constexpr,
                     dy_ptr, WIDE: tl.constexpr, BLOCK: tl.constexpr):
    # GRAD=False: y = clamp(act(x + b) * gain).  GRAD=True: y = dy * d/dx[clamp(act(x + b) * gain)].
    pid = tl.program_id(0)
    if WIDE:  # 64-bit offsets only for tensors of 2**31 elements or more (the channel index costs a division)
        pid = pid.to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    inside = offs < n
    v = tl.load(x_ptr + offs, mask=inside, other=0.0).to(tl.float32)
    if HAS_BIAS:
        v += tl.load(b_ptr + (offs // inner) % channels, mask=inside, other=0.0).to(tl.float32)
    if ACT == 1:
        a = tl.where(v > 0, v, 0.0)
        d = tl.where(v > 0, 1.0, 0.0)
    elif ACT == 2:
        a = tl.where(v > 0, v, v * alpha)
        d = tl.where(v > 0, 1.0, alpha)
    else:
        a = v
        d = tl.full(v.shape, 1.0, tl.float32)
    a = a * gain
    d = d * gain
    if HAS_CLAMP:  # torch's clamp passes the gradient where min <= value <= max
        d = tl.where(tl.abs(a) <= clamp, d, 0.0)
        a = tl.minimum(tl.maximum(a, -clamp), clamp)
    if GRAD:
        out = tl.load(dy_ptr + offs, mask=inside, other=0.0).to(tl.float32) * d
    else:
        out = a
    tl.store(y_ptr + offs, out.to(y_ptr.dtype.element_ty), mask=inside)


def _launch(x: torch.Tensor, b: torch.Tensor | None, dim: int, act: str, alpha: float, gain: float,
            clamp: float | None, dy: torch.Tensor | None) -> torch.Tensor:
    x = x.contiguous()
    src = x if dy is None else dy.contiguous()
    y = torch.empty(x.shape, dtype=src.dtype, device=x.device)
    n = x.numel()
    if n == 0:
        return y
    channels = x.shape[dim] if x.ndim else 1
    inner = 1
    for s in x.shape[dim + 1:]:
        inner *= s
    b_arg = b.contiguous() if b is not None else x
    _bias_act_kernel[(triton.cdiv(n, BLOCK),)](
        x, b_arg, y, n, channels, inner, float(alpha), float(gain), float(clamp if clamp is not None else 0.0),
        ACT=ACT_CODES[act], HAS_BIAS=b is not None, HAS_CLAMP=clamp is not None, GRAD=dy is not None,
        dy_ptr=src, WIDE=n >= 2**31 - BLOCK, BLOCK=BLOCK)
    return y


class _BiasActGrad(torch.autograd.Function):
    """dx = dy * act'(x + b) * gain (clamp mask included); linear in dy with a piecewise constant factor."""

    @staticmethod
    def forward(ctx, dy, x, b, dim, act, alpha, gain, clamp):
        ctx.save_for_backward(x, b)
        ctx.args = (dim, act, alpha, gain, clamp)
        return _launch(x, b, dim, act, alpha, gain, clamp, dy)

    @staticmethod
    def backward(ctx, ddx):
        x, b = ctx.saved_tensors
        return _BiasActGrad.apply(ddx, x, b, *ctx.args), None, None, None, None, None, None, None


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, dim, act, alpha, gain, clamp):
        ctx.save_for_backward(x, b)
        ctx.args = (dim, act, alpha, gain, clamp)
        return _launch(x, b, dim, act, alpha, gain, clamp, None)

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        dim = ctx.args[0]
        dx = _BiasActGrad.apply(dy, x, b, *ctx.args)
        db = None
        if b is not None and ctx.needs_input_grad[1]:
            db = dx.sum([i for i in range(dx.ndim) if i != dim]).to(b.dtype)
        return dx, db, None, None, None, None, None


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1, act: str = "linear",
             alpha: float | None = None, gain: float | None = None, clamp: float | None = None) -> torch.Tensor:
    """Same contract as `kernels.reference.bias_act`; tanh/sigmoid and unsupported tensors go to the reference."""
    if act not in ACT_CODES or x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return reference.bias_act(x, b, dim, act, alpha, gain, clamp)
    spec = reference.ACTIVATIONS[act]
    alpha = float(spec.default_alpha if alpha is None else alpha)
    gain = float(spec.default_gain if gain is None else gain)
    clamp = float(clamp) if clamp is not None and clamp >= 0 else None
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias shape {tuple(b.shape)} does not match x.shape[{dim}]={x.shape[dim]}")
        dtype = torch.promote_types(x.dtype, b.dtype)  # as `x + b` in the reference
        x = x.to(dtype)
    dim = dim % x.ndim if x.ndim else 0
    if not torch.is_grad_enabled() or not (x.requires_grad or (b is not None and b.requires_grad)):
        return _launch(x, b, dim, act, alpha, gain, clamp, None)
    return _BiasAct.apply(x, b, dim, act, alpha, gain, clamp)
