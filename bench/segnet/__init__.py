"""Stage 3: DeepLab-LargeFOV trained on pseudo masks, evaluated on val (docs/method.md)."""

from bench.segnet.model import SegNetConfig, build_segnet, load_segnet
from bench.segnet.predict import predict_folder, predict_segnet
from bench.segnet.train import train_segnet

__all__ = ["SegNetConfig", "build_segnet", "load_segnet", "predict_folder", "predict_segnet", "train_segnet"]
