"""Class-name prompts for the frozen CLIP text tower (spec "Learnable prompt").

Learnable mode (the paper): every class k gets the token sequence

    [start, ctx_1 .. ctx_8, name_k tokens, end, pad ...]        (length L = prompt_len = 13)

where the 8 context vectors are learnable and shared by all classes (width = text-tower width, 512 for
ViT-B/16), initialised from a truncated normal (std 1, cut at +-2). The name is the raw dataset class name
("diningtable", "tvmonitor", "background"); its BPE tokens are truncated to L - n_ctx - 2 (3 for 13 and 8)
so that the end token always fits, as in the release (names tokenised to 5 = start + 3 + end). The frozen
text tower (first L positional embeddings, causal mask) encodes the sequence and the end-token feature is
projected: T (K, E).

L is min(prompt_len, tower context length): 13 for ViT-B/16 (77) and for the tiny tower (16).

Fixed mode (``learnable=False``, ablation): "a photo of a {name}." tokenised at the tower's full context
length and encoded once; T is a constant buffer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from weakclip.clip_towers import encode_text_from_embeddings, get_tokenizer


class PromptLearner(nn.Module):
    """Produces the class text embeddings T (K, E) from a (frozen) open_clip CLIP passed at call time."""

    def __init__(
        self,
        clip,
        class_names: Sequence[str],
        n_ctx: int = 8,
        prompt_len: int = 13,
        learnable: bool = True,
        template: str = "a photo of a {}.",
    ):
        super().__init__()
        if not class_names:
            raise ValueError("PromptLearner: class_names is empty")
        self.class_names = list(class_names)
        self.learnable = learnable
        self.template = template
        tokenizer = get_tokenizer(clip)
        width = clip.token_embedding.weight.shape[1]
        if learnable:
            length = min(prompt_len, clip.context_length)
            n_name = length - n_ctx - 2
            if n_name < 1:
                raise ValueError(
                    f"PromptLearner: prompt_len {length} leaves no room for class names after "
                    f"{n_ctx} context vectors plus start/end tokens"
                )
            sot, eot = tokenizer.sot_token_id, tokenizer.eot_token_id
            ids = torch.zeros(len(self.class_names), length, dtype=torch.long)  # 0 = pad
            eot_index = torch.zeros(len(self.class_names), dtype=torch.long)
            for k, name in enumerate(self.class_names):
                name_ids = tokenizer.encode(name)[:n_name]
                seq = [sot] + [0] * n_ctx + name_ids + [eot]  # context slots filled at forward time
                ids[k, : len(seq)] = torch.tensor(seq)
                eot_index[k] = len(seq) - 1
            self.n_ctx = n_ctx
            self.ctx = nn.Parameter(torch.empty(n_ctx, width))
            nn.init.trunc_normal_(self.ctx, mean=0.0, std=1.0, a=-2.0, b=2.0)
            self.register_buffer("token_ids", ids, persistent=False)  # (K, L)
            self.register_buffer("eot_index", eot_index, persistent=False)  # (K,)
        else:
            tokens = tokenizer([template.format(name) for name in self.class_names])
            with torch.no_grad():
                device = clip.token_embedding.weight.device
                fixed = clip.encode_text(tokens.to(device))
            self.register_buffer("fixed_text", fixed.detach(), persistent=False)  # (K, E)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def forward(self, clip) -> torch.Tensor:
        """Class text embeddings T: (K, E), differentiable in ``ctx`` when learnable."""
        if not self.learnable:
            return self.fixed_text
        emb = clip.token_embedding(self.token_ids)  # (K, L, width), frozen lookup
        ctx = self.ctx.to(emb.dtype).unsqueeze(0).expand(emb.shape[0], -1, -1)  # (K, n_ctx, width)
        emb = torch.cat([emb[:, :1], ctx, emb[:, 1 + self.n_ctx :]], dim=1)
        return encode_text_from_embeddings(clip, emb, self.eot_index)
