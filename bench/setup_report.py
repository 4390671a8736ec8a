"""What `bench.setup_check` found: each problem with its kind, the counts, and the helpers both of its halves
(the data checks in setup_check.py, the weights checks in setup_weights.py) share."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.provenance import REPO_ROOT

# The flag of `python -m bench.profiles use` that sets each user-passed path.
FLAGS = {"data.root": "--data-root", "clip.weights": "--clip-weights", "seeds.folder.path": "--seed-masks",
         "segnet.config.weights": "--seg-weights", "seeds.cam.backbone_weights": "--cam-weights",
         "refine.random_walk.fit.backbone_weights": "--affinity-weights"}
MAX_PER_KIND = 5  # problems of one kind listed before "... and N more"


@dataclass
class Problem:
    kind: str  # groups problems for the "... and N more" cut
    text: str  # one line naming the file (and the parameter and flag of a user-passed path)
    missing_key: str | None = None  # set when the problem is that this parameter's path does not exist


@dataclass
class SetupReport:
    problems: list[Problem] = field(default_factory=list)
    counts: list[str] = field(default_factory=list)  # what was found, e.g. "val val: 1449 images ..."
    _seen: set = field(default_factory=set, repr=False)  # an unreadable image fails each of its masks

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, text: str, missing_key: str | None = None) -> None:
        if text not in self._seen:
            self._seen.add(text)
            self.problems.append(Problem(kind, text, missing_key))

    def problem_lines(self, skip_keys=(), limit: int = MAX_PER_KIND) -> list[str]:
        """At most `limit` lines per kind, then "... and N more"; missing paths of `skip_keys` left out."""
        by_kind: dict[str, list[str]] = {}
        for p in self.problems:
            if p.missing_key is None or p.missing_key not in skip_keys:
                by_kind.setdefault(p.kind, []).append(p.text)
        lines = []
        for kind, texts in by_kind.items():
            lines += texts[:limit]
            if len(texts) > limit:
                lines.append(f"... and {len(texts) - limit} more of this kind ({kind})")
        return lines

    def summary(self) -> str:
        return "; ".join(self.counts)


def get_param(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def resolve_path(value) -> Path:
    """params.yaml paths are repo-relative (stages run from the repository root)."""
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def param_label(key: str) -> str:
    return f"{key} ({FLAGS[key]})" if key in FLAGS else key


def error_naming(err: Exception, path: Path, limit: int = 500) -> str:
    """An error's message on one line, starting with the file unless it names it already."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    if "Weights only load failed" in text:  # torch's advice (unpickle untrusted code) is no help here
        detail = text.partition("WeightsUnpickler error:")[2].partition("Check the documentation")[0].strip()
        head = text[:text.index("Weights only load failed")]
        text = f"{head}not a PyTorch checkpoint of tensors ({detail})"
    text = text if str(path) in text else f"{path}: {text}"
    return text if len(text) <= limit else text[:limit] + " ..."


def existing_path(report: SetupReport, key: str, value, required: bool, what: str = "file") -> Path | None:
    """The path a parameter names, or None when it does not exist: a problem when `required` (a path the
    user passes), else a pipeline output not written yet (voc-mini's random ViT-B/16) and not checked."""
    path = resolve_path(value) if value is not None else None
    if path is None or not (path.is_dir() if what.endswith("folder") else path.is_file()):
        if required:
            report.add("missing path", f"{param_label(key)} = {value!r}: {what} not found", key)
        return None
    return path
