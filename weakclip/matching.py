"""Co-attention matching between class text embeddings and visual tokens (spec "Co-attention matching").

Two decoders of ``layers`` pre-norm transformer layers (width 256, 4 heads, MLP x4, dropout 0.1):

- text->pixel: queries = K text tokens, keys/values = N visual tokens ([CLS; patches]); output -> text_diff;
- pixel->text: queries = N visual tokens, keys/values = K text tokens; output -> visual_diff.

Each decoder has its own input projections (visual: LN -> Linear(E->256) -> LN; text: LN -> Linear(E->256)),
layers (self-attention, cross-attention, MLP, all residual; q/k/v without bias) and output projection
(LN -> Linear(256->E)). Layer i of both decoders only depends on the decoders' inputs, so the two
cross-attentions of layer i run in ONE ``weakclip.kernels.co_attention`` call:
``text_out = softmax(qt kv^T) vv`` is the text->pixel cross-attention and ``visual_out = softmax(qv kt^T) vt``
the pixel->text one.

Updates: T <- T + gamma * text_diff, V <- V + beta * visual_diff (per-channel scales, init 0.1), and the
matching score map S = cos(V_patches, T): (B, K, h, w).

``fidelity``:
- "release": every layer is applied to the decoder's ORIGINAL (projected) input and only the last layer's
  output is kept, as in the public release. Layers 1..L-1 cannot affect the output (and get no gradient),
  so they are not run: the output is exactly the release's, at a third of the decoder cost for L = 3.
- "paper": the layers are chained (layer i+1 consumes layer i's output).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from weakclip.kernels import co_attention

FIDELITIES = ("release", "paper")


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, T, C) -> (B, heads, T, C / heads), contiguous."""
    B, T, C = x.shape
    return x.view(B, T, heads, C // heads).transpose(1, 2).contiguous()


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, T, d) -> (B, T, heads * d)."""
    B, H, T, d = x.shape
    return x.transpose(1, 2).reshape(B, T, H * d)


class DecoderLayer(nn.Module):
    """Pre-norm layer; forward is split in three steps so two layers can share one co-attention call."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        if width % heads:
            raise ValueError(f"DecoderLayer: width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.self_qkv = nn.Linear(width, 3 * width, bias=False)
        self.self_out = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.cross_q = nn.Linear(width, width, bias=False)
        self.cross_k = nn.Linear(width, width, bias=False)
        self.cross_v = nn.Linear(width, width, bias=False)
        self.cross_out = nn.Linear(width, width)
        self.norm3 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * width, width)
        )
        self.dropout = nn.Dropout(dropout)

    def self_attend(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> x + SelfAttn(LN(x))."""
        q, k, v = (_split_heads(t, self.heads) for t in self.self_qkv(self.norm1(x)).chunk(3, dim=-1))
        return x + self.dropout(self.self_out(_merge_heads(F.scaled_dot_product_attention(q, k, v))))

    def cross_inputs(self, x: torch.Tensor, memory: torch.Tensor):
        """Queries from LN(x) (B, heads, T, d); keys/values from memory (B, heads, M, d)."""
        q = _split_heads(self.cross_q(self.norm2(x)), self.heads)
        return (
            q,
            _split_heads(self.cross_k(memory), self.heads),
            _split_heads(self.cross_v(memory), self.heads),
        )

    def finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """x (B, T, C), attended (B, heads, T, d) -> x + CrossOut(attended), then + MLP(LN(.))."""
        x = x + self.dropout(self.cross_out(_merge_heads(attended)))
        return x + self.dropout(self.mlp(self.norm3(x)))


class _Decoder(nn.Module):
    def __init__(self, embed_dim: int, width: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.visual_proj = nn.Sequential(
            nn.LayerNorm(embed_dim), nn.Linear(embed_dim, width), nn.LayerNorm(width)
        )
        self.text_proj = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, width))
        self.layers = nn.ModuleList(DecoderLayer(width, heads, dropout) for _ in range(layers))
        self.out_proj = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, embed_dim))


class CoAttentionMatching(nn.Module):
    """(cls (B,E), patches (B,E,h,w), text (K,E) or (B,K,E)) -> dict(score_map (B,K,h,w), text, visual)."""

    def __init__(
        self,
        embed_dim: int,
        width: int = 256,
        heads: int = 4,
        layers: int = 3,
        dropout: float = 0.1,
        fidelity: str = "release",
        impl: str = "auto",
        scale_init: float = 0.1,
    ):
        super().__init__()
        if fidelity not in FIDELITIES:
            raise ValueError(f"CoAttentionMatching: fidelity must be one of {FIDELITIES}, got {fidelity!r}")
        self.fidelity = fidelity
        self.impl = impl
        self.text_to_pixel = _Decoder(embed_dim, width, heads, layers, dropout)
        self.pixel_to_text = _Decoder(embed_dim, width, heads, layers, dropout)
        if fidelity == "release":
            # Layers 1..L-1 never reach the output (see _decode): frozen, so that the trainable-parameter
            # count and the optimizer hold only what training can change. They stay in the state dict.
            for decoder in (self.text_to_pixel, self.pixel_to_text):
                decoder.layers[:-1].requires_grad_(False)
        self.gamma = nn.Parameter(torch.full((embed_dim,), scale_init))  # text residual scale
        self.beta = nn.Parameter(torch.full((embed_dim,), scale_init))  # visual residual scale

    def _decode(self, visual: torch.Tensor, text: torch.Tensor):
        """visual (B, N, E), text (B, K, E) -> text_diff (B, K, E), visual_diff (B, N, E)."""
        t2p, p2t = self.text_to_pixel, self.pixel_to_text
        text_mem = p2t.text_proj(text)  # (B, K, w): keys/values of pixel->text
        visual_mem = t2p.visual_proj(visual)  # (B, N, w): keys/values of text->pixel
        xt0 = t2p.text_proj(text)  # (B, K, w): queries of text->pixel
        xv0 = p2t.visual_proj(visual)  # (B, N, w): queries of pixel->text
        xt, xv = xt0, xv0
        pairs = list(zip(t2p.layers, p2t.layers, strict=True))
        if self.fidelity == "release":  # every layer sees the original input; only the last one survives
            pairs = pairs[-1:]
        for lt, lv in pairs:
            at, av = lt.self_attend(xt), lv.self_attend(xv)
            qt, kv, vv = lt.cross_inputs(at, visual_mem)  # (B,H,K,d), (B,H,N,d), (B,H,N,d)
            qv, kt, vt = lv.cross_inputs(av, text_mem)  # (B,H,N,d), (B,H,K,d), (B,H,K,d)
            text_out, visual_out = co_attention(qt, kt, vt, qv, kv, vv, impl=self.impl)
            xt, xv = lt.finish(at, text_out), lv.finish(av, visual_out)
        return t2p.out_proj(xt), p2t.out_proj(xv)

    def forward(self, cls: torch.Tensor, patches: torch.Tensor, text: torch.Tensor) -> dict:
        B, _, h, w = patches.shape
        visual = torch.cat([cls.unsqueeze(1), patches.flatten(2).transpose(1, 2)], dim=1)  # (B, 1+h*w, E)
        if text.dim() == 2:
            text = text.unsqueeze(0).expand(B, -1, -1)  # (B, K, E)
        text_diff, visual_diff = self._decode(visual, text)
        text = text + self.gamma * text_diff
        visual = visual + self.beta * visual_diff
        v = F.normalize(visual[:, 1:], dim=-1)  # (B, h*w, E)
        t = F.normalize(text, dim=-1)  # (B, K, E)
        score = torch.einsum("bnc,bkc->bkn", v, t).reshape(B, -1, h, w)  # (B, K, h, w) cosine
        return {"score_map": score, "text": text, "visual": visual}
