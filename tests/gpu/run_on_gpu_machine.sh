#!/usr/bin/env bash
# Everything the GPU backend still has to prove on a real GPU, in one command (for a lent GPU
# machine with no network; see /work/shared/GPU_SETUP.md):
#
#   1. (once, on the CPU machine, in the repo root) download what the GPU machine lacks:
#        echo /.whl/ >> .git/info/exclude
#        python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#          --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#          --platform manylinux2014_x86_64 -d .whl pytools==2026.1.1 platformdirs==4.14.8 \
#          siphash24==1.9 mako==1.4.3 easydict==1.14 pycocotools==2.0.11
#        python3 -m pip download --no-deps --no-binary=:all: -d .whl pycuda==2026.1
#   2. on the GPU machine, carrying .whl and the generated lib/caffe/proto/caffe_pb2.py (the
#      machine has no grpcio-tools to regenerate it):  tests/gpu/run_on_gpu_machine.sh
#
# Builds PyCUDA and the Cython extensions there, then runs (logs under $OUT, or ./gpu-logs):
# the gpu-marked tests (every layer against the CPU, GPU gradient checks, NMS, ZF/VGG16
# detection, toy training, NCCL: test_nccl_gpu.py, where a libnccl.so.2 is found), the whole CPU
# suite once more, tools/benchmark_gpu.py and
# tools/benchmark_roi_warping.py --gpu.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-logs}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1

nvidia-smi || true
python3 -c "import sys; print(sys.version)"

SITE=/tmp/site
if ! PYTHONPATH=$SITE python3 -c "import pycuda.driver" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target $SITE .whl/*.whl
  mkdir -p /tmp/cudadrv
  ln -sf "$(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')" /tmp/cudadrv/libcuda.so
  printf "CUDADRV_LIB_DIR=['/tmp/cudadrv']\nCUDA_ENABLE_CURAND=False\n" > ~/.aksetup-defaults.py
  LDFLAGS=-Wl,--no-as-needed python3 -m pip install -q --no-index --no-deps \
    --no-build-isolation --target $SITE .whl/pycuda-*.tar.gz || exit 1
fi
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}

# No network there: skip make's pip step (the machine's venv has the runtime deps) and build the
# Cython extensions for its Python; the CUDA compile check runs with its nvcc.
test -f lib/caffe/proto/caffe_pb2.py || { echo "carry lib/caffe/proto/caffe_pb2.py"; exit 1; }
touch .deps-stamp lib/caffe/proto/caffe_pb2.py
make cython cuda-check > "$OUT/make.log" 2>&1 || { tail -30 "$OUT/make.log"; exit 1; }

python3 - <<'EOF'
import caffe, caffe.gpu as gpu
from caffe.gpu import cudnn, cublas
caffe.set_mode_gpu()
print('device', gpu.current_device(), 'compute capability', gpu.compute_capability())
print('cuDNN', cudnn.version(), cudnn._lib['path'])
print('cuBLAS', cublas._lib['path'])
from caffe.gpu import nccl
print('NCCL', (nccl.version(), nccl._lib['path']) if nccl.available() else 'not found')
EOF

python3 -m pytest -q -m gpu tests/gpu -rs --durations=15 2>&1 | tee "$OUT/pytest-gpu.log" | tail -40
python3 -m pytest -q tests -x 2>&1 | tail -5 | tee "$OUT/pytest-all.log"
python3 tools/benchmark_gpu.py --gpu 0 2>&1 | tee "$OUT/benchmark.log"
CAFFE_ALLOW_TF32=1 python3 tools/benchmark_gpu.py --gpu 0 --no-train 2>&1 \
  | tee "$OUT/benchmark-tf32.log"
python3 tools/benchmark_roi_warping.py --gpu 0 --repeat 10 2>&1 | tee "$OUT/benchmark-roi-warping.log"
