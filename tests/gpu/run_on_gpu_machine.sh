#!/usr/bin/env bash
# Everything the GPU backend has to prove on a real GPU, in one command of at most 8 minutes, for
# a lent GPU machine with no network (facts: /work/shared/GPU_SETUP.md; docs/gpu.md).
#
#   1. Here, on the CPU machine, in the repo root: tests/gpu/prepare_gpu_machine.sh
#      (downloads the wheels the GPU machine lacks into .whl/, generates caffe_pb2.py, checks
#      both and prints the device call to make).
#   2. There: the device tool's run with carry [".whl", "lib/caffe/proto/caffe_pb2.py"] and the
#      command  tests/gpu/run_on_gpu_machine.sh
#
# The phases run one after another, each under its own time budget and never past the overall
# deadline (DEADLINE seconds, default 470), each writing its log as it goes, so a timeout still
# leaves what ran. $OUT (default ./gpu-logs) gets at most 8 files:
#   summary.txt     one line per phase: name, exit status, seconds (written as each ends)
#   build.log       wheels, PyCUDA built from source, the Cython extensions, nvcc of every .cu
#   device.log      the device, cuDNN and cuBLAS found
#   gpu-tests.log   pytest -m gpu: every layer type and solver update against the CPU, GPU
#                   gradient checks, GPU NMS, ZF/VGG16 im_detect, 20 toy end2end iterations,
#                   NCCL (test_nccl_gpu.py, where a libnccl.so.2 is found) and ROIWarping
#   bench.log       tools/benchmark_gpu.py (float32, then TF32) and benchmark_roi_warping.py
#   bench.json, bench-tf32.json   the benchmarks' medians (ms)
#   cpu-tests.log   the rest of the suite, in parallel, if time is left
# Variables for tests/gpu/check_build_here.sh, which runs the build phase on a machine without a
# GPU: BUILD_ONLY=1 stops after it, BUILD_BUDGET (seconds, default 210) bounds it, LIBCUDA names
# the driver library to link (default: ldconfig's libcuda.so.1).
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-logs}
DEADLINE=${DEADLINE:-470}
mkdir -p "$OUT"
START=$(date +%s)
export PYTHONUNBUFFERED=1
: > "$OUT/summary.txt"

# phase NAME BUDGET LOG COMMAND...: runs COMMAND with its output appended to LOG, stopped after
# BUDGET seconds or at the deadline, whichever comes first; records the outcome in summary.txt.
phase() {
  local name=$1 budget=$2 log=$3
  shift 3
  local left=$((DEADLINE - ($(date +%s) - START)))
  if [ "$left" -lt 15 ]; then
    echo "$name skipped: deadline" >> "$OUT/summary.txt"
    return 1
  fi
  [ "$budget" -gt "$left" ] && budget=$left
  local t0
  t0=$(date +%s)
  echo "=== $name (budget ${budget}s)" >> "$log"
  # bash -c runs the exported shell functions (build, device_info) as well as programs.
  timeout --kill-after=5 "$budget" bash -c '"$@"' _ "$@" >> "$log" 2>&1
  local rc=$?
  echo "$name rc=$rc ${budget}s-budget $(( $(date +%s) - t0 ))s" >> "$OUT/summary.txt"
  return $rc
}

build() {
  test -f lib/caffe/proto/caffe_pb2.py || { echo "carry lib/caffe/proto/caffe_pb2.py"; return 1; }
  ls .whl/pycuda-*.tar.gz > /dev/null || { echo "carry .whl (tests/gpu/prepare_gpu_machine.sh)"; return 1; }
  nvidia-smi
  python3 -c "import sys; print(sys.version)"
  local site=/tmp/site
  python3 -m pip install -q --no-index --no-deps --no-compile --target $site .whl/*.whl || return 1
  mkdir -p /tmp/cudadrv
  # LIBCUDA: the driver library PyCUDA links against (tests/gpu/check_build_here.sh names a stub).
  local libcuda=${LIBCUDA:-$(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')}
  [ -n "$libcuda" ] && [ -e "$libcuda" ] || { echo "no libcuda.so.1 (ldconfig -p)"; return 1; }
  ln -sf "$libcuda" /tmp/cudadrv/libcuda.so
  # PyCUDA takes the toolkit to be the folder above the nvcc on PATH, which is wrong when that
  # nvcc is a wrapper (/usr/local/bin/nvcc): name the folder that has include/cuda.h.
  local cuda_root=
  for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda /usr/local/cuda-*; do
    if [ -n "$d" ] && [ -f "$d/include/cuda.h" ]; then cuda_root=$d; break; fi
  done
  [ -n "$cuda_root" ] || { echo "no CUDA toolkit (include/cuda.h) found"; return 1; }
  echo "CUDA toolkit: $cuda_root"
  printf "CUDA_ROOT='%s'\nCUDADRV_LIB_DIR=['/tmp/cudadrv']\nCUDA_ENABLE_CURAND=False\n" \
    "$cuda_root" > ~/.aksetup-defaults.py
  LDFLAGS=-Wl,--no-as-needed MAKEFLAGS=-j16 python3 -m pip install -q --no-index --no-deps \
    --no-build-isolation --target $site .whl/pycuda-*.tar.gz || return 1
  # The Cython extensions for this machine's Python (no network: make's pip step is skipped).
  touch .deps-stamp lib/caffe/proto/caffe_pb2.py
  (cd lib && python3 setup.py -q build_ext --inplace -j 16) || return 1
  find lib -name '*.cu' | xargs -P 16 -I{} sh -c \
    'nvcc -arch=sm_90 -std=c++17 --fatbin -o /dev/null {} || { echo "nvcc failed: {}"; exit 1; }' \
    && echo "nvcc: compiled $(find lib -name '*.cu' | wc -l) CUDA source(s)"
}

device_info() {
  python3 - <<'EOF'
import sys
sys.path.insert(0, 'lib')
import caffe, caffe.gpu as gpu
from caffe.gpu import cudnn, cublas
caffe.set_mode_gpu()
print('device', gpu.current_device(), 'compute capability', gpu.compute_capability())
print('cuDNN', cudnn.version(), cudnn._lib['path'])
print('cuBLAS', cublas._lib['path'])
from caffe.gpu import nccl
print('NCCL', (nccl.version(), nccl._lib['path']) if nccl.available() else 'not found')
EOF
}

export -f build device_info
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
phase build "${BUILD_BUDGET:-210}" "$OUT/build.log" build || { cat "$OUT/summary.txt"; tail -40 "$OUT/build.log"; exit 1; }
# BUILD_ONLY=1: the build phase alone (tests/gpu/check_build_here.sh, on a machine with no GPU).
[ "${BUILD_ONLY:-0}" = 1 ] && { cat "$OUT/summary.txt"; exit 0; }
phase device 30 "$OUT/device.log" device_info
phase gpu-tests 170 "$OUT/gpu-tests.log" \
  python3 -m pytest -q -p no:cacheprovider -m gpu tests/gpu -rs --durations=20
phase benchmark-fp32 70 "$OUT/bench.log" \
  python3 tools/benchmark_gpu.py --gpu 0 --result "$OUT/bench.json"
phase benchmark-tf32 40 "$OUT/bench.log" \
  env CAFFE_ALLOW_TF32=1 python3 tools/benchmark_gpu.py --gpu 0 --no-train \
  --result "$OUT/bench-tf32.json"
phase benchmark-roi-warping 25 "$OUT/bench.log" \
  python3 tools/benchmark_roi_warping.py --gpu 0 --repeat 5
if python3 -c "import xdist" 2>/dev/null; then
  phase cpu-tests 120 "$OUT/cpu-tests.log" python3 -m pytest -q -p no:cacheprovider -n 14 tests
fi
cat "$OUT/summary.txt"
tail -5 "$OUT/gpu-tests.log"
