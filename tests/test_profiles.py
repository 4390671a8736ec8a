"""Profile switching: one command, and a real profile without its data or weights is a clear error."""
import pytest
import yaml

from bench import profiles
from bench.params import load_params
from weakclip.core.config import config_from


def test_every_profile_is_a_complete_params_file():
    names = profiles.available_profiles()
    assert {"synthetic", "ci", "voc", "coco"} <= set(names)
    keys = set(yaml.safe_load((profiles.PROFILES_DIR / "synthetic.yaml").read_text()))
    for name in names:
        params = yaml.safe_load((profiles.PROFILES_DIR / f"{name}.yaml").read_text())
        assert params["profile"] == name
        assert set(params) == keys, f"profiles/{name}.yaml differs in top-level sections"


def test_default_params_is_the_synthetic_profile():
    params = load_params()
    assert params["profile"] == "synthetic"
    base = yaml.safe_load((profiles.PROFILES_DIR / "synthetic.yaml").read_text())
    assert params == base


def test_use_synthetic_writes_params(tmp_path):
    out = tmp_path / "params.yaml"
    profiles.use("ci", {}, out=out)
    assert load_params(out)["profile"] == "ci"


@pytest.mark.parametrize("name", ["voc", "coco"])
def test_real_profile_without_data_names_what_to_download(tmp_path, name):
    out = tmp_path / "params.yaml"
    with pytest.raises(SystemExit) as err:
        profiles.use(name, {"data.root": str(tmp_path / "nowhere")}, out=out, progress=False)
    message = str(err.value)
    assert "data.root" in message and "download" in message and "--data-root" in message
    assert "clip.weights" in message and "--clip-weights" in message
    assert not out.exists()  # nothing half-written


def test_real_profile_with_unusable_files_is_not_written(tmp_path):
    """Paths that exist are not enough: `use` validates what they hold before writing params.yaml."""
    (tmp_path / "VOC2012").mkdir()
    weights = tmp_path / "ViT-B-16.pt"
    weights.write_bytes(b"x")
    out = tmp_path / "params.yaml"
    with pytest.raises(SystemExit) as err:
        profiles.use("voc", {"data.root": str(tmp_path / "VOC2012"), "clip.weights": str(weights),
                             "segnet.config.weights": str(weights)}, out=out, progress=False)
    message = str(err.value)
    assert "no list file" in message and str(tmp_path / "VOC2012" / "ImageSets") in message
    assert f"clip.weights (--clip-weights): could not read CLIP checkpoint {weights}" in message
    assert f"segnet.config.weights (--seg-weights): {weights}: not a PyTorch checkpoint" in message
    assert not out.exists()


def test_voc_mini_profile_is_checked_then_written(tmp_path, voc_mini_root, capsys):
    """Real VOC photos and palette masks pass the checks; the CI-sized lists prepare draws later are stood
    for by the lists they are drawn from; voc-mini's random ViT-B/16 (written by a stage) is not required."""
    if "voc-mini" not in profiles.available_profiles():
        pytest.skip("no voc-mini profile")
    out = tmp_path / "params.yaml"
    profiles.use("voc-mini", {"data.root": str(voc_mini_root)}, out=out, progress=False)
    printed = capsys.readouterr().out
    assert "drawn later by the prepare stage: mini_fit (from train)" in printed
    assert "fit train: 151 images, labels from cls_labels.json" in printed
    assert "val val: 346 images with SegmentationClass masks" in printed
    assert load_params(out)["data"]["root"] == str(voc_mini_root.resolve())


def test_new_weights_flags_say_what_to_download():
    params = {"profile": "voc", "required_paths": ["seeds.cam.backbone_weights",
                                                   "refine.random_walk.fit.backbone_weights"]}
    cam, affinity = profiles.validate_paths(params)
    assert "--cam-weights" in cam and "`cam` classifier's ResNet-50" in cam
    assert "--affinity-weights" in affinity and "affinity net's ResNet-50" in affinity
    assert profiles.OVERRIDES["cam_weights"] == "seeds.cam.backbone_weights"
    assert profiles.OVERRIDES["affinity_weights"] == "refine.random_walk.fit.backbone_weights"
    assert profiles.OVERRIDES["seed_masks"] == "seeds.folder.path"


def test_check_on_a_generated_profile_has_nothing_to_check(tmp_path, capsys):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"profile": "ci", "required_paths": [], "data": {"kind": "synthetic"}}))
    assert profiles.main(["check", "--params", str(path)]) == 0
    assert "nothing to check" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="params file not found"):
        profiles.main(["check", "--params", str(tmp_path / "none.yaml")])


def test_unknown_profile():
    with pytest.raises(SystemExit, match="unknown profile"):
        profiles.use("imagenet", {})


def test_to_config_names_unknown_keys():
    from weakclip.train import TrainConfig

    with pytest.raises(ValueError, match="iteratons"):
        config_from(TrainConfig, {"iteratons": 5})
    assert config_from(TrainConfig, {"betas": [0.9, 0.99]}).betas == (0.9, 0.99)


def test_stage_threads_setting():
    from bench.stages.common import stage_threads

    assert stage_threads(None, "prepare") is None
    assert stage_threads(2, "train_weakclip@paper") == 2
    setting = {"default": 2, "pseudo_masks": 1}
    assert stage_threads(setting, "pseudo_masks@release") == 1
    assert stage_threads(setting, "train_seg@seeds") == 2
    assert stage_threads({"pseudo_masks": 1}, "prepare") is None
