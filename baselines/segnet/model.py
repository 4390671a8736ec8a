"""DeepLab-LargeFOV on a timm backbone at output stride 8: the stage-3 segmentation network.

Chen et al., "Semantic Image Segmentation with Deep Convolutional Nets and Fully Connected CRFs"
(ICLR 2015, https://arxiv.org/abs/1412.7062): the LargeFOV head is a 3x3 conv with dilation 12
followed by two 1x1 convs, on a backbone whose last stages are dilated so the features stay at
stride 8. WSSS papers (WeakCLIP included) train it on their pseudo masks and report val mIoU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

from weakclip.core.config import config_from
from weakclip.core.device import resolve_device
from weakclip.core.resize import resize_bilinear


@dataclass
class SegNetConfig:
    """Everything stage 3 needs; params.yaml's `train_seg` section maps onto these fields one to one."""

    backbone: str = "resnet101"  # any timm model that supports features_only + output_stride=8
    weights: str | None = None  # local ImageNet weights file for the backbone (None: random init)
    num_classes: int = 21
    crop_size: int = 448  # used by the harness's TrainTransform; recorded here for provenance
    scale_range: tuple[float, float] = (0.5, 1.5)
    iterations: int = 20000
    batch_size: int = 10
    lr: float = 1e-3  # backbone lr; the head gets lr * head_lr_mult
    optimizer: str = "sgd"  # "sgd" (the DeepLab recipe, for ImageNet-initialised backbones) or "adamw"
    momentum: float = 0.9  # sgd only
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    head_lr_mult: float = 10.0
    dropout: float = 0.5
    seed: int = 0
    device: str = "auto"  # "auto" = cuda when available, else cpu
    amp: bool = True  # bf16 autocast where the device has native bf16 (weakclip.core.precision), else fp32
    checkpoint_every: int = 1000  # iterations between resumable checkpoints (last.pt)
    log_every: int = 20
    test_scales: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
    test_flip: bool = True
    crf: str | None = "deeplab_voc_test"  # a weakclip.core.crf preset, or None for no test-time CRF
    crf_workers: int | None = None  # None: one CRF process per core
    num_workers: int = 4
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet, matching the backbone's weights
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @classmethod
    def from_dict(cls, d: dict) -> SegNetConfig:
        return config_from(cls, d)

    def as_dict(self) -> dict:
        return asdict(self)

    def resolved_device(self) -> torch.device:
        return resolve_device(self.device)


class DilatedConv3x3(nn.Conv2d):
    """A 3x3 conv with padding = dilation (output size = input size) that skips the arithmetic it knows is zero.

    On a map no larger than the dilation in either side (8x8 features of a 64 px synthetic crop against
    LargeFOV's dilation 12), every off-centre tap of every output reads padding, so the conv equals a 1x1 conv
    with the centre weights: same output, same gradient (zero for the off-centre weights), a ninth of the work.
    Larger maps (VOC's 56x56 at a 448 crop) take the ordinary path. The parameters are the ordinary
    Conv2d's, so checkpoints do not depend on which path ran."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int, bias: bool = False):
        super().__init__(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dilation[0]
        if x.shape[-2] <= d and x.shape[-1] <= d:
            return F.conv2d(x, self.weight[:, :, 1:2, 1:2], self.bias)
        return super().forward(x)


class LargeFOVHead(nn.Module):
    """3x3 dil-12 conv -> 512 + BN + ReLU, 1x1 -> 512 + BN + ReLU, dropout, 1x1 -> K."""

    def __init__(
        self, in_channels: int, num_classes: int, width: int = 512, dilation: int = 12, dropout: float = 0.5
    ):
        super().__init__()
        self.block = nn.Sequential(
            DilatedConv3x3(in_channels, width, dilation),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )
        self.classifier = nn.Conv2d(width, num_classes, 1)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.block(feats))


class DeepLabLargeFOV(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.backbone = backbone
        in_channels = backbone.feature_info.channels()[-1]
        self.head = LargeFOVHead(in_channels, num_classes, dropout=dropout)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)[-1]  # (B, C, H/8, W/8)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.features(images))  # (B, K, H/8, W/8)
        return resize_bilinear(logits, images.shape[-2:])

    def param_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(pretrained backbone params, new head params): the head trains at head_lr_mult x lr."""
        return list(self.backbone.parameters()), list(self.head.parameters())


def read_weights_file(path: Path) -> dict:
    """The tensors of a timm / torchvision checkpoint (.pth, .bin, .safetensors), unwrapped from a
    "state_dict" / "model" / "module" entry and from DDP's "module." prefixes."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise TypeError(f"{path}: holds no state dict (got {type(state).__name__})")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_backbone_weights(backbone: nn.Module, path: str | Path, name: str) -> None:
    """Load a local ImageNet checkpoint (timm or torchvision format, .pth/.bin/.safetensors) into a
    features_only backbone; the classifier keys (fc., head., classifier.) are dropped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"backbone weights for {name!r} not found at {path}. Download ImageNet weights for {name} "
            f"(timm's Hugging Face repo timm/{name}.* -> model.safetensors or pytorch_model.bin, or for "
            f"ResNets torchvision's {name}-*.pth) and save the file at {path}, or point the stage-3 "
            f"`weights` parameter in params.yaml at the file."
        )
    state = read_weights_file(path)
    own = backbone.state_dict()
    missing = sorted(set(own) - set(state))
    bad_shape = sorted(k for k in own if k in state and state[k].shape != own[k].shape)
    if missing or bad_shape:
        raise ValueError(
            f"{path}: not ImageNet weights for backbone {name!r}: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(bad_shape)} with the wrong shape (e.g. {bad_shape[:3]})"
        )
    backbone.load_state_dict({k: state[k] for k in own}, strict=True)


def build_segnet(cfg: SegNetConfig) -> DeepLabLargeFOV:
    """DeepLab-LargeFOV at output stride 8; random init unless cfg.weights names a local file (never downloads)."""
    backbone = timm.create_model(
        cfg.backbone, pretrained=False, features_only=True, output_stride=8, out_indices=(-1,)
    )
    if cfg.weights:
        load_backbone_weights(backbone, cfg.weights, cfg.backbone)
    return DeepLabLargeFOV(backbone, cfg.num_classes, dropout=cfg.dropout)


def load_segnet(path: str | Path, device: str | torch.device = "cpu") -> tuple[DeepLabLargeFOV, SegNetConfig]:
    """Rebuild a trained network from the model.pt that train_segnet writes (no backbone file needed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"stage-3 model not found: {path} (run train_seg first)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = SegNetConfig.from_dict({**ckpt["config"], "weights": None})
    model = build_segnet(cfg)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), cfg
