"""CLIP towers: builders, local-weight loading, dense image forward, text-from-embeddings."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import open_clip
import pytest
import torch

from weakclip.clip_towers import (
    TINY_CLIP_CFG,
    build_clip,
    encode_patch_tokens,
    encode_text_from_embeddings,
    freeze,
    get_tokenizer,
    resize_pos_embed,
    save_tiny_clip,
    tiny_clip_cfg,
    zero_shot_classifier,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tiny_config_and_overrides(tiny_clip):
    assert tiny_clip.visual.patch_size == (8, 8) and tiny_clip.visual.grid_size == (8, 8)
    assert tiny_clip.visual.transformer.resblocks[0].attn.num_heads == 4
    assert tiny_clip.context_length == 16 and len(tiny_clip.transformer.resblocks) == 3
    assert tiny_clip.visual.proj.shape == (128, 128)
    big = build_clip("tiny", None, image_size=96, text_layers=2, heads=2)
    assert big.visual.grid_size == (12, 12) and len(big.transformer.resblocks) == 2
    assert big.visual.transformer.resblocks[0].attn.num_heads == 2
    assert TINY_CLIP_CFG["vision_cfg"]["image_size"] == 64  # overrides never mutate the default
    with pytest.raises(ValueError, match="unknown override"):
        tiny_clip_cfg(colour="red")


def test_encode_patch_tokens_native_size_matches_encode_image(tiny_clip, vitb_clip):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        cls, patches, taps = encode_patch_tokens(tiny_clip, x, taps=(1, 2, 3, 4))
        torch.testing.assert_close(cls, tiny_clip.encode_image(x), atol=1e-5, rtol=1e-5)
        # the last tap is the input of ln_post: projecting its tokens reproduces the dense map
        last = taps[-1].flatten(2).transpose(1, 2)
        torch.testing.assert_close(
            tiny_clip.visual.ln_post(last) @ tiny_clip.visual.proj,
            patches.flatten(2).transpose(1, 2),
            atol=1e-5,
            rtol=1e-5,
        )
        xb = torch.randn(1, 3, 224, 224)
        torch.testing.assert_close(
            encode_patch_tokens(vitb_clip, xb)[0], vitb_clip.encode_image(xb), atol=1e-4, rtol=1e-4
        )


def test_encode_patch_tokens_non_square_and_taps(tiny_clip, vitb_clip):
    with torch.no_grad():
        cls, patches, taps = encode_patch_tokens(tiny_clip, torch.randn(2, 3, 48, 96), taps=(1, 3))
        assert cls.shape == (2, 128) and patches.shape == (2, 128, 6, 12)
        assert [t.shape for t in taps] == [(2, 128, 6, 12)] * 2
        assert not torch.allclose(taps[0], taps[1])
        cls, patches, taps = encode_patch_tokens(vitb_clip, torch.randn(1, 3, 160, 192))
        assert cls.shape == (1, 512) and patches.shape == (1, 512, 10, 12)
        assert [t.shape for t in taps] == [(1, 768, 10, 12)] * 4
    with pytest.raises(ValueError, match="multiple of the patch size"):
        encode_patch_tokens(tiny_clip, torch.randn(1, 3, 60, 64), taps=(4,))
    with pytest.raises(ValueError, match="taps"):
        encode_patch_tokens(tiny_clip, torch.randn(1, 3, 64, 64), taps=(5,))


def test_resize_pos_embed():
    pos = torch.randn(1 + 4 * 4, 8)
    assert resize_pos_embed(pos, (4, 4), (4, 4)) is pos
    const = torch.ones(1 + 4 * 4, 8) * 3.0
    const[0] = -1.0
    out = resize_pos_embed(const, (4, 4), (6, 10))
    assert out.shape == (61, 8)
    torch.testing.assert_close(out[0], const[0])  # class position untouched
    torch.testing.assert_close(out[1:], torch.full((60, 8), 3.0))  # bicubic keeps a constant field
    # a horizontal ramp stays monotone along the width after resizing
    ramp = torch.zeros(1 + 4 * 4, 1)
    ramp[1:, 0] = torch.arange(4.0).repeat(4)
    wide = resize_pos_embed(ramp, (4, 4), (4, 8))[1:, 0].reshape(4, 8)
    assert torch.all(wide[:, 1:] >= wide[:, :-1])


def test_resized_pos_embed_is_reused_until_the_weights_change():
    pos = torch.randn(1 + 4 * 4, 8)
    first = resize_pos_embed(pos, (4, 4), (6, 6))
    assert resize_pos_embed(pos, (4, 4), (6, 6)) is first  # frozen: resized once
    other = resize_pos_embed(pos, (4, 4), (8, 8))
    assert other.shape == (65, 8) and resize_pos_embed(pos, (4, 4), (6, 6)) is not first  # another grid
    with torch.no_grad():
        pos.mul_(2.0)  # a weight load / in-place update bumps the version counter
    torch.testing.assert_close(resize_pos_embed(pos, (4, 4), (6, 6)), 2.0 * first)
    trained = pos.clone().requires_grad_(True)
    out = resize_pos_embed(trained, (4, 4), (6, 6))
    assert out.requires_grad and resize_pos_embed(trained, (4, 4), (6, 6)) is not out  # never cached
    out.sum().backward()
    assert trained.grad is not None


def test_resized_pos_embed_follows_the_module_to_another_dtype():
    """module.to() keeps the Parameter object and swaps its storage: the cache must not hand back the
    grid resized from the old storage (here float32 after a move to float64; on GPU, a CPU tensor)."""
    module = torch.nn.Module()
    module.pos = torch.nn.Parameter(torch.randn(1 + 4 * 4, 8), requires_grad=False)
    first = resize_pos_embed(module.pos, (4, 4), (6, 6))
    module.to(torch.float64)
    moved = resize_pos_embed(module.pos, (4, 4), (6, 6))
    assert moved.dtype == torch.float64
    torch.testing.assert_close(moved, first.double(), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("which", ["tiny", "vitb"])
def test_encode_text_from_embeddings_matches_encode_text(which, tiny_clip, vitb_clip):
    model = tiny_clip if which == "tiny" else vitb_clip
    tok = get_tokenizer(model)
    text = tok(["a photo of a diningtable.", "tvmonitor", "background"])
    with torch.no_grad():
        emb = model.token_embedding(text)
        ours = encode_text_from_embeddings(model, emb, text.argmax(dim=-1))
        torch.testing.assert_close(ours, model.encode_text(text), atol=1e-5, rtol=1e-5)
        # a shorter sequence (the 13-token prompt) uses the first 13 positions and the causal mask
        short = encode_text_from_embeddings(model, emb[:, :13], text[:, :13].argmax(dim=-1))
        torch.testing.assert_close(short, ours, atol=1e-5, rtol=1e-5)


def test_tokenizer_context_length(tiny_clip):
    assert get_tokenizer("tiny")(["cat"]).shape == (1, 16)
    assert get_tokenizer("ViT-B-16")(["cat"]).shape == (1, 77)
    assert get_tokenizer(tiny_clip)(["cat"]).shape == (1, 16)
    with pytest.raises(ValueError):
        get_tokenizer("RN50")


def test_zero_shot_classifier_and_freeze(tiny_clip):
    w = zero_shot_classifier(tiny_clip, get_tokenizer(tiny_clip), ["cat", "dog", "bus"])
    assert w.shape == (3, 128)
    torch.testing.assert_close(w.norm(dim=-1), torch.ones(3))
    m = freeze(build_clip("tiny"))
    assert not any(p.requires_grad for p in m.parameters()) and not m.training


def test_vitb_local_open_clip_state_dict_roundtrip(tmp_path):
    torch.manual_seed(123)
    ref = open_clip.create_model("ViT-B-16", pretrained=None).eval()
    path = tmp_path / "vitb.pt"
    torch.save(ref.state_dict(), path)
    nested = tmp_path / "nested.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in ref.state_dict().items()}, "epoch": 3}, nested)
    x = torch.randn(1, 3, 224, 224)
    text = get_tokenizer("ViT-B-16")(["a photo of a cat."])
    with torch.no_grad():
        want_img, want_txt = ref.encode_image(x), ref.encode_text(text)
        for p in (path, nested):
            m = build_clip("ViT-B-16", str(p))
            assert isinstance(m.visual.transformer.resblocks[0].mlp.gelu, torch.nn.GELU)
            assert torch.equal(m.encode_image(x), want_img) and torch.equal(m.encode_text(text), want_txt)


def test_vitb_openai_style_state_dict_gets_quickgelu(tmp_path):
    torch.manual_seed(1)
    ref = open_clip.create_model("ViT-B-16", pretrained=None, force_quick_gelu=True).eval()
    sd = {k: v.half() if v.is_floating_point() else v for k, v in ref.state_dict().items()}
    sd["input_resolution"] = torch.tensor(224)
    path = tmp_path / "openai.pt"
    torch.save(sd, path)
    m = build_clip("ViT-B-16", str(path))
    act = m.visual.transformer.resblocks[0].mlp.gelu
    assert type(act).__name__ == "QuickGELU"
    assert m.visual.proj.dtype == torch.float32
    torch.testing.assert_close(m.visual.proj, ref.visual.proj.half().float())


def test_bad_weights_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="ViT-B/16.*params.yaml"):
        build_clip("ViT-B-16", str(tmp_path / "missing.pt"))
    path = tmp_path / "tiny_as_vitb.pt"
    torch.save(build_clip("tiny").state_dict(), path)
    with pytest.raises(ValueError, match="does not match the ViT-B-16 architecture.*shape mismatches"):
        build_clip("ViT-B-16", str(path))
    with pytest.raises(ValueError, match="unknown arch"):
        build_clip("ViT-L-14")


def test_tiny_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(5)
    m = build_clip("tiny", image_size=96)
    path = tmp_path / "tiny_clip.pt"
    save_tiny_clip(m, str(path))
    loaded = build_clip("tiny", str(path))
    assert loaded.visual.grid_size == (12, 12)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(x), m.encode_image(x))
    assert build_clip("tiny", str(path), image_size=96).visual.grid_size == (12, 12)
    with pytest.raises(ValueError, match="disagrees"):
        build_clip("tiny", str(path), image_size=128)
    with pytest.raises(FileNotFoundError, match="pretrain"):
        build_clip("tiny", str(tmp_path / "nope.pt"))
