"""Stage 3: DeepLab-LargeFOV trained on pseudo masks, evaluated on val (docs/method.md).

The network every method's pseudo masks train, WeakCLIP's and the baselines' alike, with the same schedule
and seeds. It sits in the library beside the baselines because its backbone pre-training (pretrain.py)
reuses the `cam` seed source's classifier; bench/stages/ runs it."""

from baselines.segnet.model import SegNetConfig, build_segnet, load_segnet
from baselines.segnet.predict import predict_folder, predict_segnet
from baselines.segnet.train import train_segnet

__all__ = ["SegNetConfig", "build_segnet", "load_segnet", "predict_folder", "predict_segnet", "train_segnet"]
