"""Co-attention between text and visual tokens: `co_attention(..., impl="torch"|"triton"|"auto")`."""
from .reference import co_attention_reference


def co_attention(qt, kt, vt, qv, kv, vv, scale=None, impl: str = "auto"):
    """Both directions of the text–pixel cross-attention in one call (see reference.py for the maths).

    Placeholder entry point: routes to the reference until the Triton path lands in function.py.
    """
    if impl not in ("torch", "triton", "auto"):
        raise ValueError(f"co_attention: impl must be 'torch', 'triton' or 'auto', got {impl!r}")
    return co_attention_reference(qt, kt, vt, qv, kv, vv, scale=scale)


__all__ = ["co_attention", "co_attention_reference"]
