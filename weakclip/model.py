"""WeakCLIP assembled: frozen CLIP towers + prompt + pyramid adapter + co-attention matching + text-guided
decoder (spec weakclip.md "Architecture"), its config and the ablation ladder.

Data flow for images (B, 3, H, W), H and W multiples of the patch size p, grid h = H/p, w = W/p:

    encode_patch_tokens -> cls (B,E), patches (B,E,h,w), taps 4 x (B,width,h,w)     [frozen image tower]
    PromptLearner       -> T (K,E)                                                   [frozen text tower]
    PyramidAdapter      -> levels at strides 4/8/16/32 (B,width,H/s,W/s)
    CoAttentionMatching -> S (B,K,h,w) = cos(V_patches, T) after the two co-attention decoders
    TextGuidedDecoder   -> logits (B,K,H/4,W/4)
    identity head       -> aux_logits = S / temperature (B,K,h,w)

Ablation switches (``ABLATION_STEPS``): ``learnable_prompt=False`` encodes "a photo of a {}." once;
``pyramid_adapter=False`` decodes ONE level: the output of the image tower's last block (before ln_post,
width channels, stride p), with no GroupNorm/resampling and the Semantic-FPN head upsampling it from stride p
to 4; ``text_guided_decoder=False`` runs the same FPN neck and head without concatenating S.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from weakclip.adapter import DEFAULT_STRIDES, PyramidAdapter
from weakclip.clip_towers import build_clip, encode_patch_tokens, freeze
from weakclip.core.config import config_from
from weakclip.decoder import TextGuidedDecoder
from weakclip.matching import FIDELITIES, CoAttentionMatching
from weakclip.prompt import PromptLearner

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the release normalises with ImageNet statistics, not CLIP's
IMAGENET_STD = (0.229, 0.224, 0.225)

# The paper's component ablation (VOC val mIoU, %); each step adds one component, the last is the full model.
ABLATION_STEPS: dict[str, dict] = {
    "matching": {"learnable_prompt": False, "pyramid_adapter": False, "text_guided_decoder": False},
    "+prompt": {"learnable_prompt": True, "pyramid_adapter": False, "text_guided_decoder": False},
    "+adapter": {"learnable_prompt": True, "pyramid_adapter": True, "text_guided_decoder": False},
    "+decoder": {"learnable_prompt": True, "pyramid_adapter": True, "text_guided_decoder": True},
}
PAPER_ABLATION_VOC_VAL: dict[str, float] = {
    "matching": 67.4,
    "+prompt": 68.9,
    "+adapter": 70.3,
    "+decoder": 72.6,
}


@dataclass
class WeakCLIPConfig:
    arch: str = "ViT-B-16"  # "ViT-B-16" or "tiny" (see clip_towers)
    weights: str | None = None  # local CLIP checkpoint; None = random towers (tests only)
    clip_overrides: dict = field(default_factory=dict)  # tiny-tower config overrides (build_clip kwargs)
    taps: tuple[int, ...] = (
        4,
        6,
        8,
        12,
    )  # 1-based image-tower blocks feeding the adapter; tiny: (1, 2, 3, 4)
    prompt_ctx: int = 8  # learnable context vectors shared by all classes
    prompt_len: int = 13  # prompt sequence length [start, ctx x 8, name (<= 3 tokens), end]
    learnable_prompt: bool = True
    pyramid_adapter: bool = True
    text_guided_decoder: bool = True
    fidelity: str = "release"  # "release" (unchained decoder layers, frozen adapter) or "paper"
    impl: str = "auto"  # co_attention implementation: "torch", "triton" or "auto"
    decoder_width: int = 256  # co-attention decoder width
    decoder_heads: int = 4
    decoder_layers: int = 3
    dropout: float = 0.1  # co-attention decoders and the segmentation head
    temperature: float = 0.07  # identity head: aux_logits = S / temperature
    fpn_channels: int = 256
    head_norm: str = "bn"  # Semantic-FPN head norm: "bn" (release) or "gn"
    fixed_template: str = "a photo of a {}."  # used when learnable_prompt is False
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        self.taps = tuple(int(t) for t in self.taps)
        self.image_mean = tuple(float(x) for x in self.image_mean)
        self.image_std = tuple(float(x) for x in self.image_std)
        self.clip_overrides = dict(self.clip_overrides or {})
        if self.fidelity not in FIDELITIES:
            raise ValueError(f"WeakCLIPConfig.fidelity must be one of {FIDELITIES}, got {self.fidelity!r}")
        if self.pyramid_adapter and len(self.taps) != len(DEFAULT_STRIDES):
            raise ValueError(f"WeakCLIPConfig.taps must name {len(DEFAULT_STRIDES)} blocks, got {self.taps}")

    @classmethod
    def from_dict(cls, d: dict) -> WeakCLIPConfig:
        return config_from(cls, d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def with_step(self, step: str) -> WeakCLIPConfig:
        """This config with the switches of one ablation step (see ABLATION_STEPS)."""
        if step not in ABLATION_STEPS:
            raise ValueError(f"unknown ablation step {step!r}; expected one of {list(ABLATION_STEPS)}")
        return dataclasses.replace(self, **ABLATION_STEPS[step])


def tiny_config(**kwargs) -> WeakCLIPConfig:
    """Config for the synthetic profile's tiny tower (4 blocks, all tapped)."""
    return WeakCLIPConfig(**{"arch": "tiny", "taps": (1, 2, 3, 4), **kwargs})


class WeakCLIP(nn.Module):
    def __init__(self, cfg: WeakCLIPConfig | dict, class_names, clip=None):
        super().__init__()
        cfg = WeakCLIPConfig.from_dict(cfg) if isinstance(cfg, dict) else cfg
        self.cfg = cfg
        self.class_names = list(class_names)
        self._text_cache: tuple | None = None  # (ctx version key, T) for inference, see class_text()
        if clip is None:
            clip = build_clip(cfg.arch, cfg.weights, **cfg.clip_overrides)
        self.clip = freeze(clip)
        visual = clip.visual
        width, embed_dim, patch = visual.conv1.out_channels, visual.output_dim, visual.patch_size[0]
        num_blocks = len(visual.transformer.resblocks)
        if max(cfg.taps) > num_blocks:
            raise ValueError(f"WeakCLIPConfig.taps {cfg.taps} exceed the image tower's {num_blocks} blocks")
        K = len(self.class_names)

        self.prompt = PromptLearner(
            clip,
            self.class_names,
            cfg.prompt_ctx,
            cfg.prompt_len,
            learnable=cfg.learnable_prompt,
            template=cfg.fixed_template,
        )
        if cfg.pyramid_adapter:
            self.adapter = PyramidAdapter(width, patch, DEFAULT_STRIDES)
            self.taps, strides = cfg.taps, DEFAULT_STRIDES
        else:
            self.adapter = None
            self.taps, strides = (num_blocks,), (patch,)  # the final block's map, one scale
        self.matching = CoAttentionMatching(
            embed_dim,
            cfg.decoder_width,
            cfg.decoder_heads,
            cfg.decoder_layers,
            cfg.dropout,
            cfg.fidelity,
            cfg.impl,
        )
        self.decoder = TextGuidedDecoder(
            [width] * len(strides),
            strides,
            K,
            cfg.fpn_channels,
            cfg.text_guided_decoder,
            cfg.dropout,
            cfg.head_norm,
        )
        if cfg.fidelity == "release" and self.adapter is not None:
            # The release's lr rule (multiplier 0 for names containing "backbone") also hits the adapter:
            # it stays at its random init. Its BatchNorm still tracks running statistics in train mode.
            for p in self.adapter.parameters():
                p.requires_grad_(False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def train(self, mode: bool = True):
        super().train(mode)
        self.clip.eval()  # the towers are frozen feature extractors
        return self

    def store_image_tower_in(self, dtype: torch.dtype) -> WeakCLIP:
        """Keep the frozen image tower's weights in ``dtype`` (bf16: an option of the fast GPU step); returns self.

        A tower stored below fp32 runs as stored, outside autocast. Under autocast, by contrast, its
        ~86M weights are re-cast on every forward, and nn.MultiheadAttention leaves its fused path. Its
        outputs come back in fp32 when the caller runs without autocast.
        """
        self.clip.visual.to(dtype)
        return self

    def store_image_tower_for(self, precision: str, device: torch.device | str) -> WeakCLIP:
        """On the CPU, a step or an inference in bf16 (``precision``, as resolved by weakclip.core.precision)
        keeps the frozen tower in bf16, the values autocast would cast its weights to; under autocast an fp32
        tower runs in fp32 on the CPU (see image_features), so this is where such a run gets its speed (ViT-B/16
        at 224 px: inference 3x faster than fp32). Elsewhere nothing changes. Returns self."""
        if precision == "bf16" and torch.device(device).type == "cpu":
            self.store_image_tower_in(torch.bfloat16)
        return self

    def image_features(self, images: torch.Tensor):
        """The frozen image tower: (cls (B,E), patches (B,E,h,w), taps [(B,width,h,w)]), see encode_patch_tokens."""
        vis_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.clip.visual.parameters())
        with torch.set_grad_enabled(vis_grad):  # nothing trainable precedes the image tower
            device_type = images.device.type
            under_autocast = torch.is_autocast_enabled(device_type)
            # An fp32 tower runs under the caller's autocast, except under CPU autocast: there
            # nn.MultiheadAttention leaves its fused path, and the in-projection of its transposed tokens
            # becomes a batched matmul that copies the weight once per token (ViT-B/16 at 224 px on an AMX
            # Xeon: inference 9x slower than fp32). It then runs in fp32, outside autocast.
            fp32_tower = self.clip.visual.conv1.weight.dtype == torch.float32
            if fp32_tower and not (under_autocast and device_type == "cpu"):
                return encode_patch_tokens(self.clip, images, self.taps)
            with torch.autocast(device_type, enabled=False):
                cls, patches, taps = encode_patch_tokens(self.clip, images, self.taps)
            if under_autocast:
                return cls, patches, taps
            return cls.float(), patches.float(), [t.float() for t in taps]

    def forward(self, images: torch.Tensor) -> dict:
        """images (B, 3, H, W) normalised -> logits (B,K,H/4,W/4), aux_logits = S/T (B,K,h,w), score_map S."""
        H, W = images.shape[-2:]
        cls, patches, taps = self.image_features(images)
        text = self.class_text()  # (K, E)
        feats = self.adapter(taps) if self.adapter is not None else taps
        score = self.matching(cls, patches, text)["score_map"]  # (B, K, h, w)
        logits = self.decoder(feats, score, (H // 4, W // 4))
        return {"logits": logits, "aux_logits": score / self.cfg.temperature, "score_map": score}

    def class_text(self) -> torch.Tensor:
        """The class text embeddings T (K, E). Without autograd (inference) the text tower runs once and
        T is reused while the prompt's context vectors keep their values, so sliding-window and multi-scale
        inference do not re-encode the prompts. The cache compares the values themselves (a few thousand
        numbers): torch's fused AdamW updates them in place without bumping their version counter."""
        ctx = getattr(self.prompt, "ctx", None)  # None: fixed prompt, T is a buffer already
        if torch.is_grad_enabled() or ctx is None:
            self._text_cache = None
            return self.prompt(self.clip)
        cached = self._text_cache
        if cached is None or cached[0].device != ctx.device or not torch.equal(cached[0], ctx):
            cached = (ctx.detach().clone(), self.prompt(self.clip))
            self._text_cache = cached
        return cached[1]

    def _parts(self) -> dict[str, nn.Module]:
        parts = {"prompt": self.prompt, "matching": self.matching, "decoder": self.decoder}
        if self.adapter is not None:
            parts["adapter"] = self.adapter
        return parts

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """AdamW groups of the trainable parameters, one per part (extra key "name").

        The CLIP towers are never included (requires_grad False: the release's lr multiplier 0). In "release"
        fidelity the pyramid adapter is frozen too; in "paper" fidelity it trains. One weight decay for all.
        """
        groups = []
        for name, module in self._parts().items():
            params = [p for p in module.parameters() if p.requires_grad]
            if params:
                groups.append({"name": name, "params": params, "lr": lr, "weight_decay": weight_decay})
        return groups

    def count_parameters(self) -> dict:
        """dict(trainable, total, share, parts={name: (trainable, total)}) over all parameters (+towers)."""
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        parts = {"clip": (0, sum(p.numel() for p in self.clip.parameters()))}
        for name, module in self._parts().items():
            parts[name] = (
                sum(p.numel() for p in module.parameters() if p.requires_grad),
                sum(p.numel() for p in module.parameters()),
            )
        return {"trainable": trainable, "total": total, "share": trainable / total, "parts": parts}

    def head_state_dict(self) -> dict:
        """State dict without the (frozen, reloadable) CLIP towers: what a training checkpoint needs."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("clip.")}

    def load_head_state_dict(self, state_dict: dict) -> None:
        own = self.head_state_dict()
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        if missing or unexpected:
            raise ValueError(
                f"WeakCLIP checkpoint mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        self.load_state_dict(state_dict, strict=False)


def build_weakclip(cfg: WeakCLIPConfig | dict, class_names, clip=None) -> WeakCLIP:
    return WeakCLIP(cfg, class_names, clip=clip)
