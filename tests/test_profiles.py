"""Profile switching: one command, and a real profile without its data or weights is a clear error."""
import pytest
import yaml

from bench import profiles
from bench.params import load_params, to_config


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
        profiles.use(name, {"data.root": str(tmp_path / "nowhere")}, out=out)
    message = str(err.value)
    assert "data.root" in message and "download" in message and "--data-root" in message
    assert "clip.weights" in message and "--clip-weights" in message
    assert not out.exists()  # nothing half-written


def test_real_profile_with_paths_is_written(tmp_path):
    (tmp_path / "VOC2012").mkdir()
    weights = tmp_path / "ViT-B-16.pt"
    weights.write_bytes(b"x")
    out = tmp_path / "params.yaml"
    params = profiles.use("voc", {"data.root": str(tmp_path / "VOC2012"), "clip.weights": str(weights),
                                  "segnet.config.weights": str(weights)}, out=out)
    assert load_params(out)["clip"]["weights"] == str(weights)
    assert params["data"]["kind"] == "voc"


def test_unknown_profile():
    with pytest.raises(SystemExit, match="unknown profile"):
        profiles.use("imagenet", {})


def test_to_config_names_unknown_keys():
    from weakclip.train import TrainConfig

    with pytest.raises(ValueError, match="iteratons"):
        to_config(TrainConfig, {"iteratons": 5})
    assert to_config(TrainConfig, {"betas": [0.9, 0.99]}).betas == (0.9, 0.99)


def test_stage_threads_setting():
    from bench.stages.common import stage_threads

    assert stage_threads(None, "prepare") is None
    assert stage_threads(2, "train_weakclip@paper") == 2
    setting = {"default": 2, "pseudo_masks": 1}
    assert stage_threads(setting, "pseudo_masks@release") == 1
    assert stage_threads(setting, "train_seg@seeds") == 2
    assert stage_threads({"pseudo_masks": 1}, "prepare") is None
