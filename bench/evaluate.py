"""Score a folder of `<id>.png` index masks against ground truth and write the metrics as JSON.

    python -m bench.evaluate --pred DIR --gt DIR --list FILE --num-classes C \
        [--pred-ignore {background,ignore,miss}] [--exclude-classes 12,26,...] --out FILE.json

Metric definitions: bench/metrics.py. The JSON holds miou, iou, precision, recall, fp, fn, coverage,
pixel_accuracy, n_images, num_classes, pred_ignore, plus the inputs (pred, gt, list) and environment().
Bad input (missing or mis-sized prediction, label >= C, RGB or corrupt PNG, empty list, an id without
ground truth) exits with status 2 and a message naming the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.data.base import read_id_list
from bench.metrics import PRED_IGNORE_MODES, evaluate_masks
from bench.provenance import environment
from weakclip.core.io import write_json


def run(
    pred: str,
    gt: str,
    list_file: str,
    num_classes: int,
    out: str | None,
    pred_ignore: str = "background",
    exclude_classes=(),
    progress: bool = True,
) -> dict:
    """Evaluate and (when `out` is given) write the result atomically; returns the result dict."""
    ids = read_id_list(list_file)
    result = evaluate_masks(
        pred,
        gt,
        ids,
        num_classes,
        pred_ignore=pred_ignore,
        exclude_classes=exclude_classes,
        progress=progress,
    )
    result.update(
        {
            "pred": str(Path(pred)),
            "gt": str(Path(gt)),
            "list": str(Path(list_file)),
            "environment": environment(),
        }
    )
    if out:
        write_json(out, result)
    return result


def _class_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated class indices, got {text!r}") from exc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pred", required=True, help="folder of predicted <id>.png index masks")
    parser.add_argument("--gt", required=True, help="folder of ground-truth <id>.png index masks")
    parser.add_argument("--list", required=True, dest="list_file", help="image list, one id per line")
    parser.add_argument("--num-classes", required=True, type=int, help="number of classes incl. background")
    parser.add_argument(
        "--pred-ignore",
        default="background",
        choices=PRED_IGNORE_MODES,
        help="how 255 in a prediction is scored (default: background)",
    )
    parser.add_argument(
        "--exclude-classes",
        type=_class_list,
        default=(),
        help="class indices never scored (e.g. COCO's unused ids in the 91-id space)",
    )
    parser.add_argument("--out", help="output JSON file (written atomically)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        result = run(
            args.pred,
            args.gt,
            args.list_file,
            args.num_classes,
            args.out,
            args.pred_ignore,
            args.exclude_classes,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"bench.evaluate: error: {exc}", file=sys.stderr)
        return 2
    miou = "n/a" if result["miou"] is None else f"{result['miou'] * 100:.2f}"
    coverage = "n/a" if result["coverage"] is None else f"{result['coverage']:.4f}"  # no scorable pixel
    print(
        f"mIoU {miou} over {result['n_classes_scored']} classes, {result['n_images']} images, "
        f"coverage {coverage} (pred_ignore={result['pred_ignore']})"
        + (f" -> {args.out}" if args.out else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
