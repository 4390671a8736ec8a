"""The weights half of `bench.setup_check`: clip.weights loads as CLIP ViT-B/16, and each ImageNet weights file
(stage 3, the `cam` classifier, the random-walk affinity net) fits its timm backbone."""
from __future__ import annotations

from pathlib import Path

from .setup_report import SetupReport, error_naming, existing_path, get_param, param_label

# (weights key, backbone key, the code's default backbone when the key is absent)
BACKBONES = (("segnet.config.weights", "segnet.config.backbone", "resnet101"),
             ("seeds.cam.backbone_weights", "seeds.cam.backbone", "resnet50"),
             ("refine.random_walk.fit.backbone_weights", "refine.random_walk.fit.backbone", "tiny"))


def check_clip(report: SetupReport, params: dict, external: set) -> None:
    clip, key = params.get("clip") or {}, "clip.weights"
    if clip.get("arch", "ViT-B-16") != "ViT-B-16" or (value := clip.get("weights")) is None:
        return  # the tiny tower's weights are a pipeline output
    if (path := existing_path(report, key, value, key in external)) is None:
        return
    from weakclip.clip_towers import VIT_B16, build_clip  # torch and open_clip: only when there is a file

    try:
        build_clip(VIT_B16, str(path))  # the loader every stage uses: strict keys and shapes
    except Exception as err:  # noqa: BLE001 - a broken JIT archive fails in many ways; each is this file's
        expected = "expected CLIP ViT-B/16: OpenAI's ViT-B-16.pt or an open_clip ViT-B-16 state dict"
        report.add("CLIP weights", f"{param_label(key)}: {error_naming(err, path)} ({expected})")
        return
    report.counts.append("CLIP ViT-B/16 ok")


def check_backbones(report: SetupReport, params: dict, external: set) -> None:
    fine = []
    for key, backbone_key, default in BACKBONES:
        if (value := get_param(params, key)) is None:
            continue  # random init (synthetic); a real profile lists the key in required_paths
        backbone = get_param(params, backbone_key) or default
        if (path := existing_path(report, key, value, key in external)) is None:
            continue
        if problem := _backbone_problem(key, path, backbone):
            report.add("ImageNet weights", problem)
        else:
            fine.append(f"{backbone} ok")
    if fine:
        report.counts.append("ImageNet weights: " + ", ".join(fine))


def _backbone_problem(key: str, path: Path, backbone: str) -> str | None:
    import timm

    from baselines.segnet.model import load_backbone_weights

    try:
        model = timm.create_model(backbone, pretrained=False, features_only=True)
    except (RuntimeError, ValueError, TypeError) as err:  # unknown name, or no features_only support
        return f"{param_label(key)} = {path}: backbone {backbone!r} is not a timm model with features_only ({err})"
    try:
        if key == "segnet.config.weights":
            load_backbone_weights(model, path, backbone)  # stage 3's own loader, exactly
        state = _read_state_dict(path)
    except Exception as err:  # noqa: BLE001 - unreadable (pickle, zip, safetensors), or stage 3 refused it
        return f"{param_label(key)}: {error_naming(err, path)}"
    own = model.state_dict()
    # timm loads the cam / affinity weights non-strictly: missing layers would silently stay random
    # (a missing BatchNorm step counter is harmless).
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    # Extra keys inside the backbone's own modules are another architecture's layers (resnet101 weights for
    # a resnet50); modules features_only drops (classifier, final norm) are fine.
    tops = {k.split(".")[0] for k in own}
    extra = [k for k in state if k not in own and k.split(".")[0] in tops]
    kinds = (("missing keys", missing), ("keys with the wrong shape", wrong), ("unexpected keys", extra))
    found = [f"{len(keys)} {what} (e.g. {keys[:2]})" for what, keys in kinds if keys]
    if found:
        return f"{param_label(key)} = {path}: not ImageNet weights for backbone {backbone!r}: {', '.join(found)}"
    return None


def _read_state_dict(path: Path) -> dict:
    """A weights file's tensors, read as stage 3 reads them (baselines.segnet.model.read_weights_file)."""
    import torch

    from baselines.segnet.model import read_weights_file

    state = read_weights_file(path)
    if not any(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path}: holds no state dict of tensors")
    return {k: v for k, v in state.items() if torch.is_tensor(v)}
