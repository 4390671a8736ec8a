"""The real profiles carry the published recipes: every value below is the paper's or its release's
(docs/method.md, docs/baselines.md), so a change to a recipe in profiles/ has to change this test too."""
import pytest
import yaml

from baselines.random_walk import RWConfig
from bench.params import get
from bench.profiles import PROFILES_DIR
from weakclip.core.crf import CRF_PRESETS


def _profile(name):
    return yaml.safe_load((PROFILES_DIR / f"{name}.yaml").read_text())


WEAKCLIP = {  # WeakCLIP release configs (mmseg): both datasets
    "weakclip.model.taps": [4, 6, 8, 12],
    "weakclip.train.lr": 1e-4, "weakclip.train.min_lr": 1e-6, "weakclip.train.weight_decay": 3e-5,
    "weakclip.train.warmup_iters": 1500, "weakclip.train.seed": 504,
    "weakclip.transform.crop_size": 512, "weakclip.transform.scale_range": [0.5, 2.0],
    "weakclip.transform.base_size": [2048, 512], "weakclip.transform.cat_max_ratio": 0.75,
    "weakclip.transform.photometric": True,
    "weakclip.loss.aux_weight": 0.4, "weakclip.loss.loss_size": 64,
    "weakclip.infer.short_side": 512, "weakclip.infer.window": 512, "weakclip.infer.stride": 341,
    "weakclip.infer.scales": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], "weakclip.infer.flip": True,
    "weakclip.infer.restrict_to_labels": False,
}
STAGE3 = {  # DeepLab-LargeFOV
    "segnet.config.crop_size": 448, "segnet.config.scale_range": [0.5, 1.5], "segnet.config.optimizer": "sgd",
    "segnet.config.momentum": 0.9, "segnet.config.weight_decay": 5e-4, "segnet.config.poly_power": 0.9,
    "segnet.config.head_lr_mult": 10.0, "segnet.config.test_scales": [0.5, 0.75, 1.0, 1.25, 1.5],
    "segnet.config.test_flip": True, "segnet.pretrain": None,
}
IRN = {  # IRN (Ahn et al. 2019): the CAM classifier and the affinity network, both from ImageNet ResNet-50
    "seeds.cam.backbone": "resnet50", "seeds.cam.output_stride": 16, "seeds.cam.epochs": 5,
    "seeds.cam.batch_size": 16, "seeds.cam.optimizer": "sgd", "seeds.cam.lr": 0.1, "seeds.cam.weight_decay": 1e-4,
    "seeds.cam.resize_long": [320, 640], "seeds.cam.crop_size": 512,
    "seeds.cam.generate.scales": [1.0, 0.5, 1.5, 2.0], "seeds.cam.generate.bg_score": 0.15,
    "refine.random_walk.fit.backbone": "resnet50", "refine.random_walk.fit.crop_size": 512,
    "refine.random_walk.fit.epochs": 3, "refine.random_walk.fit.batch_size": 32,
    "refine.random_walk.fit.optimizer": "sgd", "refine.random_walk.fit.lr": 0.1,
    "refine.random_walk.fit.weight_decay": 1e-4,
}
PUBLISHED = {
    "voc": {**WEAKCLIP, **STAGE3, **IRN,
            "data.fit_split": "train_aug", "data.score_split": "train", "data.val_split": "val",
            "data.gt_masks": "SegmentationClass", "data.label_masks": "SegmentationClassAug",
            "weakclip.train.iterations": 20000, "weakclip.train.batch_size": 16, "weakclip.crf": "weakclip_voc",
            "segnet.config.crf": "deeplab_voc_test", "refine.crf.preset": "psa"},
    "coco": {**WEAKCLIP, **STAGE3, **IRN,
             "data.fit_split": "train", "data.score_split": "train", "data.val_split": "val",
             "data.gt_masks": "SegmentationClass",
             "weakclip.train.iterations": 40000, "weakclip.train.batch_size": 24, "weakclip.crf": "weakclip_coco"},
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_real_profile_recipe_is_the_published_one(name):
    params = _profile(name)
    wrong = {k: (get(params, k, "<absent>"), v) for k, v in PUBLISHED[name].items() if get(params, k, "<absent>") != v}
    assert not wrong, f"profiles/{name}.yaml departs from the published recipe (ours, published): {wrong}"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_real_profile_needs_imagenet_weights_for_every_imagenet_network(name):
    required = set(_profile(name)["required_paths"])
    assert {"clip.weights", "segnet.config.weights", "seeds.cam.backbone_weights",
            "refine.random_walk.fit.backbone_weights"} <= required


def test_crf_presets_are_the_published_ones():
    published = {"psa": (3, 3, 80, 13, 10), "deeplab": (1, 3, 67, 3, 4), "weakclip_voc": (3, 3, 83, 5, 3),
                 "weakclip_coco": (1, 3, 67, 3, 4), "weakclip_loss": (3, 3, 80, 13, 10),
                 "deeplab_voc_test": (1, 3, 112, 2, 3)}
    for name, (gs, gc, bs, br, bc) in published.items():
        p = CRF_PRESETS[name]
        assert (p.gauss_sxy, p.gauss_compat, p.bilateral_sxy, p.bilateral_srgb, p.bilateral_compat) == (gs, gc, bs, br, bc)
        assert p.iterations == 10


def test_random_walk_keeps_irns_walk():
    c = RWConfig()
    assert (c.radius, c.beta, c.exp_times, c.fg_threshold, c.bg_threshold, c.bg_score) == (5, 10.0, 8, 0.30, 0.05, 0.25)


def test_voc_mini_runs_the_voc_code_path_cut_down():
    """Same stages, same network names, the protocol's three splits; only sizes, schedule and weights differ."""
    voc, mini = _profile("voc"), _profile("voc-mini")
    for key in ("clip.arch", "seeds.cam.backbone", "refine.random_walk.fit.backbone", "segnet.config.backbone",
                "weakclip.variants", "refine.methods", "seeds.sources", "weakclip.crf", "data.kind", "data.gt_masks"):
        assert get(mini, key) == get(voc, key), key
    assert get(mini, "clip.random_init") is not None and get(mini, "check.require_reference") is False
    lists = get(mini, "data.make_lists")
    assert lists["mini_score"]["from"] == "mini_fit"  # the score split lies within the fit split, as train in train_aug
