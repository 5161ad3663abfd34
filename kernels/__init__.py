"""StyleGAN ops: `bias_act`, `upfirdn2d`, `filtered_lrelu`, dispatched to the fastest backend."""

from kernels.dispatch import bias_act, filtered_lrelu, select_backend, upfirdn2d

__all__ = ["bias_act", "filtered_lrelu", "select_backend", "upfirdn2d"]
