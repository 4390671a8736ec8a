"""Every method the benchmark scores: its name in result rows, the folder of its masks, and what it is.

One module owns the method -> folder layout (the stages that make masks write there; the stages that score or
train on them read from here):

    seeds:<source>        data/seeds/<source>/masks          argmax of a seed source's CAMs
    <refiner>             data/refined/<refiner>/masks       a refiner on the main seeds' CAMs
    weakclip[<variant>]   data/pseudo/<variant>/s<seed>      WeakCLIP's pseudo masks, one folder per run seed
    weakclip[abl_<step>]  data/pseudo/ablation-<step>        a step of the paper's ablation ladder (run seed 0)
    weakclip[release/<d>] data/pseudo/deviation-<d>          the release model with one of the synthetic profile's
                                                             departures from the recipe undone (run seed 0)

and each method's comparison key (`describe`): the seed source it starts from, whether those seeds had
CLIP-ES's class-aware attention affinity, and the refiner (none for bare seeds). The report sets a published
number beside ours only when that key, the dataset and the split all match (bench/report.py).
"""
from __future__ import annotations

from pathlib import Path

from .common import DATA, Stage


def pseudo_mask_dirs(stage: Stage) -> list[tuple[str, Path, int | None]]:
    """(method name, folder of <id>.png masks, run seed or None for deterministic methods) of every method
    scored as pseudo masks."""
    out = [(f"seeds:{s}", DATA / "seeds" / s / "masks", None) for s in stage.get("seeds.sources")]
    out += [(r, DATA / "refined" / r / "masks", None) for r in stage.get("refine.methods")]
    out += [(f"weakclip[{v}]", DATA / "pseudo" / v / f"s{seed}", seed)
            for v in stage.get("weakclip.variants") for seed in stage.get("run_seeds")]
    out += [(f"weakclip[abl_{s}]", DATA / "pseudo" / f"ablation-{s}", 0) for s in stage.get("weakclip.ablation")]
    out += [(f"weakclip[release/{d}]", DATA / "pseudo" / f"deviation-{d}", 0)
            for d in stage.get("weakclip.deviations")]
    return out


def training_masks(stage: Stage, method: str, run_seed: int) -> tuple[str, Path]:
    """Stage 3's training source (`segnet.methods`: seeds | <refiner> | weakclip_<variant>) -> (the method's
    name in result rows, the folder of its masks)."""
    if method == "seeds":
        main = stage.get("seeds.main")
        return f"seeds:{main}", DATA / "seeds" / main / "masks"
    if method.startswith("weakclip_"):
        variant = method.removeprefix("weakclip_")
        return f"weakclip[{variant}]", DATA / "pseudo" / variant / f"s{run_seed}"
    if method in stage.get("refine.methods"):
        return method, DATA / "refined" / method / "masks"
    raise SystemExit(f"unknown stage-3 training source {method!r}: expected seeds, weakclip_<variant> or a refiner")


def describe(stage: Stage, method: str) -> dict:
    """A result row's comparison key: {seeds, caa, refiner}. `caa` says whether the seeds themselves carry
    CLIP-ES's class-aware attention affinity (seeds.clip_es.caa); the `caa` refiner is a refiner, applied to
    whichever seeds are main."""
    if method.startswith("seeds:"):
        source, refiner = method.removeprefix("seeds:"), "none"
    else:
        source = stage.get("seeds.main")
        refiner = "weakclip" if method.startswith("weakclip[") else method
    caa = source == "clip_es" and bool(stage.get("seeds.clip_es.caa", False))
    return {"seeds": source, "caa": caa, "refiner": refiner}
