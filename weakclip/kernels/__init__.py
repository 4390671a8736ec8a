"""Co-attention between text and visual tokens: `co_attention(..., impl="torch"|"triton"|"auto")`.

reference.py is the PyTorch spec, triton.py the fused kernels and their launchers (imported lazily, so that
TRITON_INTERPRET can be set first), function.py the autograd.Function and the impl switch.
"""
from .function import CoAttentionFunction, co_attention, co_attention_triton
from .reference import co_attention_reference

__all__ = ["CoAttentionFunction", "co_attention", "co_attention_reference", "co_attention_triton"]
