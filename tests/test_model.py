"""WeakCLIP model: shapes, gradients, fidelity modes, ablation steps, parameter accounting, overfitting."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from torch import nn

import weakclip.matching as matching_mod
from bench.data.voc import VOC_CLASSES
from weakclip.adapter import PyramidAdapter
from weakclip.clip_towers import build_clip, get_tokenizer
from weakclip.core.optim import adamw
from weakclip.losses import WeakCLIPLoss
from weakclip.model import (
    ABLATION_STEPS,
    PAPER_ABLATION_VOC_VAL,
    WeakCLIP,
    WeakCLIPConfig,
    tiny_config,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def expected_trainable(E, width, text_width, K, patch, w=256, fpn=256, n_ctx=8, layers=3, adapter=True):
    """Parameter counts of the non-tower parts derived by hand from the layer shapes (spec weakclip.md)."""

    def ln(d):  # LayerNorm / GroupNorm / BatchNorm: weight + bias
        return 2 * d

    def lin(i, o, bias=True):  # Linear or 1x1 conv
        return i * o + (o if bias else 0)

    layer = (
        ln(w)
        + lin(w, 3 * w, False)
        + lin(w, w)  # self-attention
        + ln(w)
        + 3 * lin(w, w, False)
        + lin(w, w)  # cross-attention
        + ln(w)
        + lin(w, 4 * w)
        + lin(4 * w, w)
    )  # MLP
    one_decoder = (ln(E) + lin(E, w) + ln(w)) + (ln(E) + lin(E, w)) + layers * layer + (ln(w) + lin(w, E))
    matching = 2 * one_decoder + 2 * E  # + gamma, beta
    convt = width * width * 4 + width
    n_up = {16: 3, 8: 1}[patch]  # transposed convs over the four branches
    adapter_params = 4 * ln(width) + n_up * convt + (2 * width if patch == 16 else 0)  # GN x4, ConvT, BN
    levels = 4 if adapter else 1
    neck = levels * (lin(width + K, fpn) + fpn * fpn * 9 + fpn)
    stages = (
        {16: [1, 1, 2, 3], 8: [1, 1, 2, 3]}[patch] if adapter else [max(1, (patch // 4).bit_length() - 1)]
    )
    head = sum(stages) * (fpn * fpn * 9 + 2 * fpn) + lin(fpn, K)
    return {
        "prompt": n_ctx * text_width,
        "matching": matching,
        "decoder": neck + head,
        "adapter": adapter_params,
        "decoder_layer": layer,  # one layer of one of the two matching decoders
    }


def test_vitb16_parameter_counts_both_fidelities(vitb_clip):
    counts = {}
    for fidelity in ("release", "paper"):
        m = WeakCLIP(WeakCLIPConfig(fidelity=fidelity), VOC_CLASSES, clip=vitb_clip)
        counts[fidelity] = m.count_parameters()
    exp = expected_trainable(512, 768, 512, 21, 16)
    clip_total = sum(p.numel() for p in vitb_clip.parameters())
    for fidelity, c in counts.items():
        print(
            f"ViT-B/16 WeakCLIP [{fidelity}]: trainable {c['trainable']:,} / total {c['total']:,} "
            f"= {100 * c['share']:.2f}% (paper: 12.4%)  parts {c['parts']}"
        )
        parts = ("prompt", "matching", "decoder", "adapter")
        assert c["total"] == clip_total + sum(exp[p] for p in parts)
        assert c["parts"]["clip"] == (0, clip_total)
        for part in parts:
            assert c["parts"][part][1] == exp[part], part
    # release: the adapter is frozen, and layers 1-2 of both matching decoders never reach the output
    dead = 2 * 2 * exp["decoder_layer"]
    assert counts["release"]["trainable"] == exp["prompt"] + exp["matching"] - dead + exp["decoder"]
    assert counts["paper"]["trainable"] == counts["release"]["trainable"] + dead + exp["adapter"]
    assert counts["paper"]["share"] > counts["release"]["share"]


def test_vitb16_forward_backward_gradients(vitb_clip):
    m = WeakCLIP(WeakCLIPConfig(fidelity="paper"), VOC_CLASSES, clip=vitb_clip).train()
    out = m(torch.randn(1, 3, 160, 160))
    assert out["logits"].shape == (1, 21, 40, 40)
    assert out["aux_logits"].shape == out["score_map"].shape == (1, 21, 10, 10)
    torch.testing.assert_close(out["aux_logits"], out["score_map"] / 0.07)
    assert out["score_map"].abs().max() <= 1 + 1e-5  # cosine similarities
    (out["logits"].logsumexp(1).mean() + out["aux_logits"].logsumexp(1).mean()).backward()
    assert all(p.grad is None for p in m.clip.parameters())
    assert not any(p.requires_grad for p in m.clip.parameters())
    for name, module in (
        ("prompt", m.prompt),
        ("adapter", m.adapter),
        ("matching", m.matching),
        ("decoder", m.decoder),
    ):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(g.abs().sum() for g in grads) > 0, name
    assert m.prompt.ctx.grad.abs().sum() > 0  # through the frozen text tower


@pytest.mark.parametrize("fidelity", ["release", "paper"])
def test_exactly_the_trainable_parameters_get_gradients(tiny_clip, fidelity):
    """The trainable count (the report's share) holds what training can change: a parameter marked
    trainable that never gets a gradient (the release's unchained decoder layers) would inflate it."""
    m = WeakCLIP(tiny_config(fidelity=fidelity), VOC_CLASSES, clip=tiny_clip).train()
    out = m(torch.randn(2, 3, 64, 64))
    (out["logits"].logsumexp(1).mean() + out["aux_logits"].logsumexp(1).mean()).backward()
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    with_grad = {n for n, p in m.named_parameters() if p.grad is not None}
    assert trainable == with_grad
    dead = {n for n in trainable | with_grad if ".layers.0." in n or ".layers.1." in n}
    assert (dead == set()) == (fidelity == "release")


def test_tiny_all_ablation_steps_and_fidelities(tiny_clip):
    assert (
        list(ABLATION_STEPS)
        == list(PAPER_ABLATION_VOC_VAL)
        == ["matching", "+prompt", "+adapter", "+decoder"]
    )
    assert list(PAPER_ABLATION_VOC_VAL.values()) == [67.4, 68.9, 70.3, 72.6]
    x = torch.randn(2, 3, 64, 96)
    for step in ABLATION_STEPS:
        for fidelity in ("release", "paper"):
            cfg = tiny_config(fidelity=fidelity).with_step(step)
            m = WeakCLIP(cfg, VOC_CLASSES, clip=tiny_clip).eval()
            out = m(x)
            assert out["logits"].shape == (2, 21, 16, 24), (step, fidelity)
            assert out["score_map"].shape == (2, 21, 8, 12)
            assert (m.adapter is not None) == cfg.pyramid_adapter
            assert m.prompt.learnable == cfg.learnable_prompt
            lateral_in = m.decoder.neck.lateral[0].in_channels
            assert lateral_in == 128 + (21 if cfg.text_guided_decoder else 0)
            assert len(m.decoder.neck.lateral) == (4 if cfg.pyramid_adapter else 1)
            groups = m.param_groups(1e-4, 3e-5)
            assert ("adapter" in [g["name"] for g in groups]) == (cfg.pyramid_adapter and fidelity == "paper")


def _perturb_first_layers(m):
    with torch.no_grad():
        for dec in (m.matching.text_to_pixel, m.matching.pixel_to_text):
            for p in dec.layers[0].parameters():
                p.add_(torch.randn_like(p))


def test_release_layers_are_unchained_paper_layers_chained(tiny_clip):
    x = torch.randn(2, 3, 64, 64)
    for fidelity, changes in (("release", False), ("paper", True)):
        torch.manual_seed(1)
        m = WeakCLIP(tiny_config(fidelity=fidelity), VOC_CLASSES, clip=tiny_clip).eval()
        before = m(x)["logits"]
        _perturb_first_layers(m)
        after = m(x)["logits"]
        assert (not torch.equal(before, after)) == changes, fidelity
        m.zero_grad()
        m.train()
        m(x)["logits"].sum().backward()
        first = m.matching.text_to_pixel.layers[0].cross_q.weight.grad
        last = m.matching.text_to_pixel.layers[-1].cross_q.weight.grad
        assert last is not None and last.abs().sum() > 0
        assert (first is not None and first.abs().sum() > 0) == changes, fidelity


@pytest.mark.parametrize("fidelity, n_calls", [("paper", 3), ("release", 1)])
def test_one_co_attention_call_per_layer(tiny_clip, monkeypatch, fidelity, n_calls):
    """One call per chained layer; the release's dead layers (their outputs are discarded) are not run."""
    calls = []
    real = matching_mod.co_attention

    def counting(qt, kt, vt, qv, kv, vv, impl="auto", **kw):
        calls.append((qt.shape, kt.shape, qv.shape, kv.shape, impl))
        return real(qt, kt, vt, qv, kv, vv, impl=impl, **kw)

    monkeypatch.setattr(matching_mod, "co_attention", counting)
    m = WeakCLIP(tiny_config(impl="torch", fidelity=fidelity), VOC_CLASSES, clip=tiny_clip).eval()
    m(torch.randn(2, 3, 64, 64))
    assert len(calls) == n_calls
    # (B, heads, K, 64) text and (B, heads, 1 + 8*8, 64) visual
    assert calls[0][:4] == ((2, 4, 21, 64), (2, 4, 21, 64), (2, 4, 65, 64), (2, 4, 65, 64))
    assert calls[0][4] == "torch"


def test_prompt_layout_and_fixed_template(tiny_clip):
    m = WeakCLIP(tiny_config(), VOC_CLASSES, clip=tiny_clip)
    tok = get_tokenizer(tiny_clip)
    ids, eot = m.prompt.token_ids, m.prompt.eot_index
    assert ids.shape == (21, 13) and m.prompt.ctx.shape == (8, 128)
    assert (ids[:, 0] == tok.sot_token_id).all() and (ids[torch.arange(21), eot] == tok.eot_token_id).all()
    assert m.prompt.ctx.abs().max() <= 2.0 and m.prompt.ctx.std() > 0.5  # truncated N(0, 1)
    assert ids[VOC_CLASSES.index("cat"), 9 : 9 + len(tok.encode("cat"))].tolist() == tok.encode("cat")
    assert (eot <= 12).all()
    fixed = WeakCLIP(tiny_config(learnable_prompt=False), VOC_CLASSES, clip=tiny_clip)
    with torch.no_grad():
        want = tiny_clip.encode_text(tok([f"a photo of a {c}." for c in VOC_CLASSES]))
    torch.testing.assert_close(fixed.prompt(tiny_clip), want)
    assert not any(n.startswith("prompt") for n, p in fixed.named_parameters() if p.requires_grad)


def test_adapter_layouts():
    a16 = PyramidAdapter(32, 16)
    kinds16 = [[type(m).__name__ for m in b] for b in a16.branches]
    assert kinds16 == [
        ["GroupNorm", "ConvTranspose2d", "BatchNorm2d", "GELU", "ConvTranspose2d"],
        ["GroupNorm", "ConvTranspose2d"],
        ["GroupNorm"],
        ["GroupNorm", "MaxPool2d"],
    ]
    outs = a16([torch.randn(2, 32, 6, 8)] * 4)
    assert [tuple(o.shape[-2:]) for o in outs] == [(24, 32), (12, 16), (6, 8), (3, 4)]
    a8 = PyramidAdapter(32, 8)
    outs = a8([torch.randn(1, 32, 8, 12)] * 4)
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    with pytest.raises(ValueError, match="powers of two"):
        PyramidAdapter(32, 12)


def test_param_groups_and_state(tiny_clip):
    m = WeakCLIP(tiny_config(fidelity="paper"), VOC_CLASSES, clip=tiny_clip)
    groups = m.param_groups(1e-4, 3e-5)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == sum(1 for p in m.parameters() if p.requires_grad)
    tower = {id(p) for p in m.clip.parameters()}
    assert not tower & set(ids)
    assert all(g["lr"] == 1e-4 and g["weight_decay"] == 3e-5 for g in groups)
    torch.optim.AdamW(groups)
    rel = WeakCLIP(tiny_config(fidelity="release"), VOC_CLASSES, clip=tiny_clip)
    assert not any(p.requires_grad for p in rel.adapter.parameters())
    assert {id(p) for g in rel.param_groups(1e-4, 0) for p in g["params"]}.isdisjoint(
        {id(p) for p in rel.adapter.parameters()}
    )
    sd = m.head_state_dict()
    assert sd and not any(k.startswith("clip.") for k in sd)
    m2 = WeakCLIP(tiny_config(fidelity="paper"), VOC_CLASSES, clip=tiny_clip)
    m2.load_head_state_dict(sd)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(m.eval()(x)["logits"], m2.eval()(x)["logits"])
    with pytest.raises(ValueError, match="missing"):
        m2.load_head_state_dict({})
    m.train()
    assert m.training and not m.clip.training


def test_config_validation():
    with pytest.raises(ValueError, match="unknown config keys"):
        WeakCLIPConfig.from_dict({"arch": "tiny", "colour": 1})
    with pytest.raises(ValueError, match="fidelity"):
        WeakCLIPConfig(fidelity="preprint")
    with pytest.raises(ValueError, match="ablation step"):
        WeakCLIPConfig().with_step("+crf")
    cfg = WeakCLIPConfig.from_dict(tiny_config(taps=[1, 2, 3, 4]).to_dict())
    assert cfg.taps == (1, 2, 3, 4) and cfg.arch == "tiny"


def test_one_batch_overfit_tiny(tiny_clip):
    torch.manual_seed(0)
    m = WeakCLIP(tiny_config(fidelity="paper"), VOC_CLASSES[:4], clip=tiny_clip).train()
    images = torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)
    images[:, 16:48, 16:48] = torch.tensor([220, 30, 30], dtype=torch.uint8)
    seeds = torch.full((2, 64, 64), 255, dtype=torch.long)
    seeds[:, :10] = 0
    seeds[:, 20:44, 20:44] = torch.tensor([1, 3]).view(2, 1, 1)
    x = (images.permute(0, 3, 1, 2).float() / 255 - 0.45) / 0.25
    loss_fn = WeakCLIPLoss(crf_workers=1)
    opt = torch.optim.AdamW(m.param_groups(1e-3, 3e-5))
    totals = []
    for _ in range(12):
        losses = loss_fn(m(x), {"mask": seeds, "image_uint8": images})
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
        totals.append(losses["total"].item())
    print("overfit totals", [round(t, 3) for t in totals])
    assert sum(totals[-3:]) / 3 < 0.5 * sum(totals[:3]) / 3


def test_custom_clip_sizes_dims(tiny_clip):
    """Non-default decoder sizes flow through (the synthetic profile may shrink them for CPU speed)."""
    m = WeakCLIP(tiny_config(decoder_width=64, decoder_heads=2, fpn_channels=32), VOC_CLASSES, clip=tiny_clip)
    assert m(torch.randn(1, 3, 64, 64))["logits"].shape == (1, 21, 16, 16)
    assert isinstance(m.decoder.head.classifier, nn.Conv2d) and m.decoder.head.classifier.in_channels == 32


def test_inference_reuses_class_text_until_the_prompt_changes(tiny_clip, monkeypatch):
    m = WeakCLIP(tiny_config(fidelity="paper"), VOC_CLASSES, clip=tiny_clip).eval()
    encodes = []
    real = m.prompt.forward
    monkeypatch.setattr(m.prompt, "forward", lambda clip: encodes.append(1) or real(clip))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        first = m(x)["logits"]
        torch.testing.assert_close(m(x)["logits"], first)
        assert len(encodes) == 1  # the text tower ran once for two forward passes
        m.prompt.ctx.add_(1.0)  # an optimizer step changes the context vectors in place
        changed = m(x)["logits"]
    assert len(encodes) == 2 and not torch.equal(changed, first)
    m(x)  # with autograd the prompt is always encoded (its gradient is needed)
    assert len(encodes) == 3
    # torch's fused AdamW (weakclip.core.optim) updates in place without bumping the version counter: the
    # cache must still see the new context vectors.
    with torch.no_grad():
        before = m(x)["logits"]
    m.prompt.ctx.grad = torch.ones_like(m.prompt.ctx)
    adamw([m.prompt.ctx], lr=0.1).step()
    with torch.no_grad():
        after = m(x)["logits"]
    assert len(encodes) == 5 and not torch.equal(after, before)


def test_image_tower_stored_in_bf16_matches_fp32_and_still_trains():
    torch.manual_seed(0)
    clip = build_clip("tiny")
    images = torch.randn(2, 3, 64, 64)
    model = WeakCLIP(tiny_config(impl="torch", fidelity="paper"), VOC_CLASSES[:4], clip=clip).eval()
    with torch.no_grad():
        want = model(images)["logits"]
        model.store_image_tower_in(torch.bfloat16)
        assert model.clip.visual.conv1.weight.dtype == torch.bfloat16
        got = model(images)["logits"]  # no autocast: the tower's bf16 outputs come back as fp32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cls, patches, taps = model.image_features(images)
    assert got.dtype == torch.float32
    assert cls.dtype == patches.dtype == taps[0].dtype == torch.bfloat16  # as stored, under autocast
    scale = want.abs().max()
    assert (got - want).abs().max() < 0.05 * scale  # bf16 weights: close to the fp32 tower, not equal
    assert (got - want).abs().max() > 0  # the tower did run in bf16
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(images)
    out["logits"].float().sum().backward()
    assert model.decoder.head.classifier.weight.grad is not None
    assert all(p.grad is None for p in model.clip.visual.parameters())


def test_cpu_autocast_runs_an_fp32_tower_in_fp32(tiny_clip):
    """Under CPU bf16 autocast the fp32 frozen tower runs outside autocast (its attention's slow path there
    copied the in-projection weight once per token): the same features, to the bit, as without autocast."""
    m = WeakCLIP(tiny_config(), VOC_CLASSES, clip=tiny_clip).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain = m.image_features(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under = m.image_features(x)
    assert under[0].dtype == torch.float32
    assert torch.equal(plain[0], under[0]) and torch.equal(plain[1], under[1])
    assert all(torch.equal(a, b) for a, b in zip(plain[2], under[2], strict=True))


@pytest.mark.parametrize("native", [True, False])
def test_a_cpu_bf16_step_stores_the_frozen_tower_in_bf16(tiny_clip, monkeypatch, native):
    from weakclip.core import precision
    from weakclip.train import TrainConfig, prepare_model

    monkeypatch.setattr(precision, "_cpu_has_native_bf16", lambda: native)
    tower = WeakCLIP(tiny_config(), VOC_CLASSES, clip=tiny_clip).clip.visual.conv1.weight
    bf16_step = prepare_model(WeakCLIP(tiny_config(), VOC_CLASSES, clip=build_clip("tiny")),
                              TrainConfig(amp="bf16"), torch.device("cpu"))
    fp32_step = prepare_model(WeakCLIP(tiny_config(), VOC_CLASSES, clip=build_clip("tiny")),
                              TrainConfig(amp="none"), torch.device("cpu"))
    assert tower.dtype == torch.float32  # building a model changes nothing
    assert bf16_step.clip.visual.conv1.weight.dtype == (torch.bfloat16 if native else torch.float32)
    assert fp32_step.clip.visual.conv1.weight.dtype == torch.float32
