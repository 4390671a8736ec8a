"""CLIP towers for WeakCLIP: building open_clip models offline and running them densely.

Two architectures:

- ``"ViT-B-16"``: the real CLIP ViT-B/16 (open_clip's built-in config). Weights come from a local file only:
  an OpenAI checkpoint (the JIT archive ``ViT-B-16.pt`` or its state dict; QuickGELU) or an open_clip state
  dict (optionally nested under ``"state_dict"`` and/or with ``"module."`` prefixes; GELU).
- ``"tiny"``: a small open_clip ``CLIP`` for the synthetic profile (``TINY_CLIP_CFG``), optionally loaded
  from the checkpoint written by the CLIP pre-training stage: ``{"cfg": <resolved cfg>, "state_dict": ...}``
  (see ``save_tiny_clip``).

The network is never touched (no ``pretrained=`` tags are passed to open_clip).

Dense use (``encode_patch_tokens``): the image tower runs at any input size whose sides are multiples of the
patch size; the learned positional embedding is resized (bicubic) from the pre-training grid to the input's
token grid, patch tokens are tapped after chosen blocks, and the final tokens go through ``ln_post`` and
``proj`` so that patch tokens live in the joint image-text space (as the class token does).
"""

from __future__ import annotations

import copy
import os
import zipfile
from collections.abc import Sequence

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.tokenizer import SimpleTokenizer

from weakclip.core.io import atomic_path

VIT_B16 = "ViT-B-16"
TINY = "tiny"
ARCHS = (VIT_B16, TINY)

# Tiny open_clip CLIP for the synthetic profile (same layout as open_clip's model_configs/*.json).
TINY_CLIP_CFG: dict = {
    "embed_dim": 128,  # joint image-text embedding size (output of visual.proj and text_projection)
    "vision_cfg": {
        "image_size": 64,  # pre-training resolution; sets the learned positional-embedding grid (8x8)
        "patch_size": 8,  # patch (= token) stride in pixels
        "width": 128,  # transformer width of the image tower
        "layers": 4,  # number of residual attention blocks
        "head_width": 32,  # per-head width -> heads = width / head_width = 4
    },
    "text_cfg": {
        "context_length": 16,  # number of text positions (prompt sequences are 13 long, see prompt.py)
        "vocab_size": 49408,  # CLIP BPE vocabulary (open_clip's SimpleTokenizer)
        "width": 128,  # transformer width of the text tower
        "heads": 4,  # attention heads of the text tower
        "layers": 3,  # number of residual attention blocks
    },
}

# Flat override names accepted by build_clip("tiny", ...): name -> (section, field).
_TINY_OVERRIDES = {
    "embed_dim": (None, "embed_dim"),
    "image_size": ("vision_cfg", "image_size"),
    "patch_size": ("vision_cfg", "patch_size"),
    "vision_width": ("vision_cfg", "width"),
    "vision_layers": ("vision_cfg", "layers"),
    "vision_head_width": ("vision_cfg", "head_width"),
    "context_length": ("text_cfg", "context_length"),
    "vocab_size": ("text_cfg", "vocab_size"),
    "text_width": ("text_cfg", "width"),
    "text_heads": ("text_cfg", "heads"),
    "text_layers": ("text_cfg", "layers"),
}

_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")

WEIGHTS_HINT = (
    "Download the OpenAI CLIP ViT-B/16 weights (ViT-B-16.pt, "
    "https://openaipublic.azureedge.net/clip/models/"
    "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt) "
    "or an open_clip ViT-B-16 state dict, put the file on this machine and set its path in params.yaml "
    "(the `weights` key of the profile's clip section)."
)


def tiny_clip_cfg(**overrides) -> dict:
    """TINY_CLIP_CFG with overrides applied; accepts the flat names in ``_TINY_OVERRIDES`` and
    ``width``/``layers``/``heads`` (applied to both towers), or nested ``vision_cfg={...}`` /
    ``text_cfg={...}``."""
    cfg = copy.deepcopy(TINY_CLIP_CFG)
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ("vision_cfg", "text_cfg"):
            unknown = (
                set(value) - set(cfg[key]) - {"heads"} if key == "vision_cfg" else set(value) - set(cfg[key])
            )
            if unknown:
                raise ValueError(f"tiny CLIP override {key}: unknown fields {sorted(unknown)}")
            cfg[key].update(value)
        elif key in _TINY_OVERRIDES:
            section, field = _TINY_OVERRIDES[key]
            (cfg if section is None else cfg[section])[field] = value
        elif key in ("width", "layers"):
            cfg["vision_cfg"][key] = value
            cfg["text_cfg"][key] = value
        elif key == "heads":
            cfg["text_cfg"]["heads"] = value
            cfg["vision_cfg"]["head_width"] = cfg["vision_cfg"]["width"] // value
        else:
            raise ValueError(
                f"tiny CLIP: unknown override {key!r}; allowed: "
                f"{sorted(_TINY_OVERRIDES) + ['width', 'layers', 'heads']}"
            )
    vc = cfg["vision_cfg"]
    if "heads" in vc:  # open_clip's CLIPVisionCfg takes head_width, not heads
        vc["head_width"] = vc["width"] // vc.pop("heads")
    if vc["width"] % vc["head_width"]:
        raise ValueError(
            f"tiny CLIP: vision width {vc['width']} is not a multiple of head_width {vc['head_width']}"
        )
    return cfg


def _clip_from_cfg(cfg: dict) -> CLIP:
    model = CLIP(
        cfg["embed_dim"],
        CLIPVisionCfg(**cfg["vision_cfg"]),
        CLIPTextCfg(**cfg["text_cfg"]),
        quick_gelu=cfg.get("quick_gelu", False),
    )
    model.tiny_cfg = copy.deepcopy(cfg)  # kept so save_tiny_clip can write a self-describing checkpoint
    return model


def _is_jit_archive(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in zf.namelist())


def _read_checkpoint(path: str) -> tuple[dict, bool]:
    """Return (state_dict, looks_openai). Handles JIT archives, nesting under "state_dict" and "module."."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CLIP weights file not found: {path}. {WEIGHTS_HINT}")
    if _is_jit_archive(path):
        state_dict = torch.jit.load(path, map_location="cpu").state_dict()
        looks_openai = True
    else:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"could not read CLIP checkpoint {path}: {err}") from err
        if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
            ckpt = ckpt["state_dict"]
        if not isinstance(ckpt, dict) or not ckpt:
            raise ValueError(f"CLIP checkpoint {path} holds no state dict (got {type(ckpt).__name__})")
        state_dict = ckpt
        looks_openai = any(k in state_dict for k in _OPENAI_EXTRA_KEYS) or any(
            torch.is_tensor(v) and v.dtype == torch.float16 for v in state_dict.values()
        )
    state_dict = {(k.removeprefix("module.")): v for k, v in state_dict.items()}
    for key in _OPENAI_EXTRA_KEYS:
        state_dict.pop(key, None)
    return state_dict, looks_openai


def _load_strict(model: torch.nn.Module, state_dict: dict, path: str, what: str) -> None:
    """load_state_dict with a readable ValueError on missing / unexpected / mismatched keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"CLIP checkpoint {path} does not match the {what} architecture: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}, "
            f"{len(mismatched)} shape mismatches {mismatched[:5]}"
        )
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()})


def build_clip(arch: str, weights: str | None = None, **overrides) -> CLIP:
    """Build an open_clip ``CLIP`` (fp32, eval mode, offline).

    ``arch="ViT-B-16"``: ``weights`` is a local OpenAI or open_clip checkpoint (None = random init, for tests
    and parameter counts). Override ``quick_gelu=True|False`` to force the activation; by default
    OpenAI-format files (JIT archive, fp16 tensors or ``input_resolution`` key) get QuickGELU, open_clip
    state dicts GELU.
    ``arch="tiny"``: ``TINY_CLIP_CFG`` with ``overrides`` (see ``tiny_clip_cfg``); with ``weights`` the
    architecture is taken from the checkpoint's ``cfg`` and overrides must agree with it.
    """
    if arch == VIT_B16:
        unknown = set(overrides) - {"quick_gelu"}
        if unknown:
            raise ValueError(
                f"build_clip('ViT-B-16'): unsupported overrides {sorted(unknown)} (only quick_gelu)"
            )
        quick_gelu = overrides.get("quick_gelu")
        state_dict, looks_openai = (None, False) if weights is None else _read_checkpoint(str(weights))
        if quick_gelu is None:
            quick_gelu = looks_openai
        model = open_clip.create_model(VIT_B16, pretrained=None, force_quick_gelu=bool(quick_gelu))
        if state_dict is not None:
            _load_strict(model, state_dict, str(weights), VIT_B16)
        return model.float().eval()
    if arch == TINY:
        if weights is None:
            return _clip_from_cfg(tiny_clip_cfg(**overrides)).eval()
        if not os.path.isfile(weights):
            raise FileNotFoundError(
                f"tiny CLIP checkpoint not found: {weights}. It is written by the pretrain_clip stage "
                "(python -m weakclip.pretrain / `dvc repro pretrain_clip`); run that first."
            )
        ckpt = torch.load(weights, map_location="cpu", weights_only=True)
        if not (isinstance(ckpt, dict) and "cfg" in ckpt and "state_dict" in ckpt):
            raise ValueError(
                f"tiny CLIP checkpoint {weights} must be a dict with 'cfg' and 'state_dict' keys"
            )
        cfg = ckpt["cfg"]
        if overrides:
            wanted = tiny_clip_cfg(**overrides)
            base = tiny_clip_cfg()
            conflicts = [
                f"{sec}.{k}: checkpoint {cfg[sec][k]} vs requested {v}"
                for sec in ("vision_cfg", "text_cfg")
                for k, v in wanted[sec].items()
                if v != base[sec].get(k) and cfg[sec].get(k) != v
            ]
            if wanted["embed_dim"] != base["embed_dim"] and wanted["embed_dim"] != cfg["embed_dim"]:
                conflicts.append(
                    f"embed_dim: checkpoint {cfg['embed_dim']} vs requested {wanted['embed_dim']}"
                )
            if conflicts:
                raise ValueError(
                    f"tiny CLIP checkpoint {weights} disagrees with the requested config: {conflicts}"
                )
        model = _clip_from_cfg(cfg)
        _load_strict(model, ckpt["state_dict"], str(weights), "tiny")
        return model.eval()
    raise ValueError(f"build_clip: unknown arch {arch!r}; expected one of {ARCHS}")


def save_tiny_clip(clip: CLIP, path: str) -> None:
    """Write ``{"cfg", "state_dict"}`` (the format build_clip("tiny", path) reads), atomically."""
    cfg = getattr(clip, "tiny_cfg", None)
    if cfg is None:
        raise ValueError("save_tiny_clip: model was not built by build_clip('tiny', ...) (no tiny_cfg)")
    with atomic_path(path) as tmp:
        torch.save({"cfg": cfg, "state_dict": clip.state_dict()}, tmp)


def get_tokenizer(arch_or_model) -> SimpleTokenizer:
    """open_clip's BPE SimpleTokenizer with the tower's context length (77 for ViT-B-16, 16 for tiny)."""
    if isinstance(arch_or_model, torch.nn.Module):
        context_length = arch_or_model.context_length
    elif arch_or_model == VIT_B16:
        context_length = 77
    elif arch_or_model == TINY:
        context_length = TINY_CLIP_CFG["text_cfg"]["context_length"]
    else:
        raise ValueError(f"get_tokenizer: unknown arch {arch_or_model!r}; pass a model or one of {ARCHS}")
    return SimpleTokenizer(context_length=context_length)


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """Set requires_grad=False on every parameter and switch to eval mode; returns the model."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def resize_pos_embed(pos: torch.Tensor, src_grid: tuple[int, int], dst_grid: tuple[int, int]) -> torch.Tensor:
    """(1 + gh*gw, C) learned positional embedding -> (1 + h*w, C), bicubic on the patch part.

    A frozen embedding (no autograd through it) is resized once per grid and the result kept on the
    tensor itself, keyed by its storage, version counter (a weight load bumps it), device and dtype (a
    module's .to() swaps the storage of the same Parameter object): CUDA's bicubic kernel loops over the
    768 channels of ViT-B/16 serially and took 3.6 ms per forward on an H200.
    """
    if tuple(src_grid) == tuple(dst_grid):
        return pos
    if pos.requires_grad and torch.is_grad_enabled():
        return _resize_pos_embed(pos, src_grid, dst_grid)
    key = (tuple(src_grid), tuple(dst_grid), pos.data_ptr(), pos._version, pos.device, pos.dtype)
    cache = getattr(pos, "_resized_cache", None)
    if cache is None or cache[0] != key:
        cache = (key, _resize_pos_embed(pos.detach(), src_grid, dst_grid))
        pos._resized_cache = cache
    return cache[1]


def _resize_pos_embed(pos: torch.Tensor, src_grid: tuple[int, int], dst_grid: tuple[int, int]) -> torch.Tensor:
    cls_pos, grid_pos = pos[:1], pos[1:]
    grid_pos = grid_pos.reshape(1, src_grid[0], src_grid[1], -1).permute(0, 3, 1, 2)  # (1, C, gh, gw)
    grid_pos = F.interpolate(grid_pos.float(), size=dst_grid, mode="bicubic", align_corners=False)
    grid_pos = grid_pos.to(pos.dtype).permute(0, 2, 3, 1).reshape(dst_grid[0] * dst_grid[1], -1)
    return torch.cat([cls_pos, grid_pos], dim=0)


def encode_patch_tokens(clip: CLIP, images: torch.Tensor, taps: Sequence[int] = (4, 6, 8, 12)):
    """Dense forward of the image tower.

    images: (B, 3, H, W) normalised, H and W multiples of the patch size (h = H/p, w = W/p).
    taps: 1-based block indices whose outputs (before ln_post) are returned as feature maps.
    Returns (cls_proj (B, E), patch_proj (B, E, h, w), [(B, width, h, w) per tap]).
    """
    visual = clip.visual
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
        raise ValueError("encode_patch_tokens supports class-token ViT towers only (no attentional pooling)")
    blocks = visual.transformer.resblocks
    taps = [int(t) for t in taps]
    if any(t < 1 or t > len(blocks) for t in taps):
        raise ValueError(
            f"encode_patch_tokens: taps {taps} must lie in 1..{len(blocks)} (1-based block indices)"
        )
    B, _, H, W = images.shape
    ph, pw = visual.patch_size
    if H % ph or W % pw:
        raise ValueError(f"encode_patch_tokens: input {H}x{W} is not a multiple of the patch size {ph}x{pw}")
    h, w = H // ph, W // pw

    x = visual.conv1(images.to(visual.conv1.weight.dtype))  # (B, width, h, w)
    x = x.flatten(2).transpose(1, 2)  # (B, h*w, width)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(B, -1, -1)
    x = torch.cat([cls, x], dim=1)  # (B, 1+h*w, width)
    x = x + resize_pos_embed(visual.positional_embedding, visual.grid_size, (h, w)).to(x.dtype)
    x = visual.ln_pre(x)  # patch dropout skipped: this is a frozen, dense use of the tower

    batch_first = getattr(visual.transformer, "batch_first", True)
    tapped = {}
    if not batch_first:
        x = x.transpose(0, 1)  # (1+h*w, B, width)
    for i, blk in enumerate(blocks, start=1):
        x = blk(x)
        if i in taps:
            xb = x if batch_first else x.transpose(0, 1)
            tapped[i] = xb[:, 1:].transpose(1, 2).reshape(B, -1, h, w)  # (B, width, h, w)
    if not batch_first:
        x = x.transpose(0, 1)

    x = visual.ln_post(x) @ visual.proj  # (B, 1+h*w, E)
    cls_proj = x[:, 0]
    patch_proj = x[:, 1:].transpose(1, 2).reshape(B, -1, h, w)  # (B, E, h, w)
    return cls_proj, patch_proj, [tapped[t] for t in taps]


def _text_parts(clip):
    """(token_embedding, positional_embedding, transformer, ln_final, text_projection, attn_mask)."""
    owner = clip.text if hasattr(clip, "text") else clip  # CustomTextCLIP keeps the tower under .text
    return (
        owner.token_embedding,
        owner.positional_embedding,
        owner.transformer,
        owner.ln_final,
        owner.text_projection,
        owner.attn_mask,
    )


def encode_text_from_embeddings(clip: CLIP, token_embeddings: torch.Tensor, eot_index: torch.Tensor):
    """Run the text tower from token embeddings (K, L, width); returns the end-token features (K, E).

    Adds the first L positional embeddings, applies the causal mask, ln_final, picks position eot_index[k]
    of sequence k and projects with text_projection (as CLIP.encode_text does after its embedding lookup).
    """
    _, pos, transformer, ln_final, proj, attn_mask = _text_parts(clip)
    K, L, _ = token_embeddings.shape
    if L > pos.shape[0]:
        raise ValueError(f"encode_text_from_embeddings: sequence length {L} > context length {pos.shape[0]}")
    x = token_embeddings + pos[:L].to(token_embeddings.dtype)
    mask = attn_mask[:L, :L] if attn_mask is not None else None
    x = transformer(x, attn_mask=mask)  # (K, L, width); Transformer handles its own batch_first layout
    x = ln_final(x)
    x = x[torch.arange(K, device=x.device), eot_index.to(x.device)]  # (K, width)
    if proj is None:
        return x
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj


@torch.no_grad()
def zero_shot_classifier(
    clip: CLIP, tokenizer, class_names: Sequence[str], template: str = "a photo of a {}."
):
    """L2-normalised text embeddings (C, E) of template.format(name) for each class name."""
    device = next(clip.parameters()).device
    tokens = tokenizer([template.format(name) for name in class_names]).to(device)
    return F.normalize(clip.encode_text(tokens), dim=-1)
