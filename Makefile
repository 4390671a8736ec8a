# One-command entry points (see README). Everything runs inside .venv, created on first use.
PY      := .venv/bin/python
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE   := 1

.PHONY: setup test repro ci-pipeline voc-mini-pipeline check tune

setup: .venv/.installed

# Pins in requirements/cpu-constraints.txt keep pip on the torch build these machines carry.
.venv/.installed: pyproject.toml requirements/cpu-constraints.txt
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -c requirements/cpu-constraints.txt -e ".[dev]"
	touch $@

test: setup
	$(PY) -m pytest -q

# dvc runs each stage's `python` from PATH, so the venv goes first.
repro: setup
	PATH=$(CURDIR)/.venv/bin:$$PATH dvc repro

check: setup
	$(PY) -m bench.check

# The reduced `ci` profile of the whole pipeline, end to end, then the regression gate,
# in a scratch copy so the committed params.yaml, dvc.lock and results/ stay untouched.
ci-pipeline: setup
	bash .ci/pipeline

# The voc code path on the real VOC photos of the voc-mini folder (VOC_MINI), end to end, in a scratch copy.
VOC_MINI ?= ../shared/data/voc-mini
voc-mini-pipeline: setup
	bash .ci/pipeline voc-mini --data-root "$$(cd $(VOC_MINI) && pwd)"

# Re-select the synthetic profile's settings on the tuning split (bench/tune.py): STUDIES="weakclip_iterations ..."
tune: setup
	PATH=$(CURDIR)/.venv/bin:$$PATH $(PY) -m bench.tune $(STUDIES)
