#!/usr/bin/env bash
# Every GPU measurement of the suite in one go, on a CUDA machine that has torch and triton but not
# the rest of the stack (the lent H100/H200 machines): GPU tests, the kernel benchmark, the VOC-shape
# WeakCLIP throughput of each step configuration, and the fast step's breakdown. Results go to $OUT
# (default results/perf/gpu-run); copy them into results/perf/gpu/ and commit.
#
#   bash bench/gpu_session.sh [OUT]          # SKIP_KERNELS=1: without the kernel tests and benchmark
#
# Offline installs come from .whl/ (open_clip_torch, ftfy, wcwidth wheels; pydensecrf2 sdist), put
# there beforehand with `pip download`; they go to a private --target so the machine's torch stays.
set -uo pipefail
out=${1:-${OUT:-results/perf/gpu-run}}
mkdir -p "$out"
site=/tmp/weakclip-site
if [ -d .whl ]; then
  python3 -m pip install -q --no-deps --no-index --target "$site" .whl/*.whl 2>&1 | tail -3
  # the sdist builds against the machine's own cython/setuptools (no index to fetch build deps from)
  python3 -m pip install -q --no-deps --no-index --no-build-isolation --target "$site" .whl/*.tar.gz 2>&1 | tail -3
fi
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$out/nvidia_smi.csv"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"

gpu_tests="tests/test_crf_exact.py tests/test_resize.py"
[ "${SKIP_KERNELS:-0}" != 1 ] && gpu_tests="$gpu_tests tests/test_kernels_gpu.py"
echo "== GPU tests: $gpu_tests"
python3 -m pytest -q -o addopts="" -m gpu $gpu_tests -p no:cacheprovider >"$out/gpu_tests.txt" 2>&1
tail -5 "$out/gpu_tests.txt"

if [ "${SKIP_KERNELS:-0}" != 1 ]; then

echo "== kernel benchmark"
python3 -m bench.kernel_bench --out "$out/kernel_bench.csv" 2>&1 | tail -40

fi

echo "== WeakCLIP VOC-shape throughput"
python3 -m bench.stages.profile --voc-gpu --out-dir "$out" 2>&1 | tail -20

echo "== training-step breakdown (the fast configuration)"
python3 -m bench.step_breakdown --config fast --out "$out/step_breakdown.csv" --kernels "$out/step_kernels.txt" \
  2>&1 | tail -60
