#!/usr/bin/env bash
# Runs the build phase of tests/gpu/run_on_gpu_machine.sh on this machine, which has nvcc but no
# GPU and no driver, so that a broken build is found before GPU time is spent on it:
#   - a stub libcuda.so.1: every cu* function of the toolkit's cuda.h, each returning
#     CUDA_ERROR_NO_DEVICE (100), with the real library's soname;
#   - a Python 3.12 virtual environment (the GPU machine's Python) with what that machine has
#     preinstalled and the build needs (numpy, cython, setuptools, wheel, protobuf);
#   - a copy of the working tree (tracked and untracked files, as the device tool carries them)
#     with .whl/ and caffe_pb2.py (run tests/gpu/prepare_gpu_machine.sh first), built there with
#     BUILD_ONLY=1 and HOME in the scratch folder (the build writes ~/.aksetup-defaults.py);
#   - then PyCUDA's driver module and caffe.gpu must import against the stub, and cuInit must
#     answer "no device" through PyCUDA.
# PYTHON312 names the interpreter (default: pyenv's newest 3.12). Takes about 3 minutes on 2 cores.
set -eu
cd "$(dirname "$0")/../.."
ROOT=$PWD
ls .whl/pycuda-*.tar.gz > /dev/null 2>&1 || {
  echo "run tests/gpu/prepare_gpu_machine.sh first" >&2; exit 1; }
PY=${PYTHON312:-$(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -1)}
[ -n "$PY" ] && "$PY" -c 'import sys; assert sys.version_info[:2] == (3, 12)' || {
  echo "no Python 3.12: set PYTHON312" >&2; exit 1; }
CUDA_H=
for d in "${CUDA_HOME:-}" /usr/local/cuda /usr/local/cuda-*; do
  if [ -n "$d" ] && [ -f "$d/include/cuda.h" ]; then CUDA_H=$d/include/cuda.h; break; fi
done
[ -n "$CUDA_H" ] || { echo "no CUDA toolkit (include/cuda.h)" >&2; exit 1; }

SCRATCH=$(mktemp -d /tmp/gpu-build-check.XXXXXX)
# KEEP_SCRATCH=1 leaves the scratch folder (and /tmp/site) for a look after a failure.
[ "${KEEP_SCRATCH:-0}" = 1 ] || trap 'rm -rf "$SCRATCH" /tmp/site /tmp/cudadrv' EXIT
echo "scratch: $SCRATCH"

# The stub: the names cuda.h and cudaProfiler.h (PyCUDA's profiler calls) declare, after their
# macros have mapped them to their versioned symbols (cuCtxCreate -> cuCtxCreate_v2 ...), which
# is what PyCUDA's objects reference.
mkdir -p "$SCRATCH/stub"
printf '#include <cuda.h>\n#include <cudaProfiler.h>\n' \
  | gcc -E -P -I"$(dirname "$CUDA_H")" -x c - \
  | grep -oE '\bcu[A-Za-z0-9_]+[[:space:]]*\(' | sed 's/[[:space:](]//g' | sort -u \
  | grep -vxE 'cuGetErrorName|cuGetErrorString|cuDriverGetVersion' \
  | awk '{ printf "int %s(void) { return 100; }\n", $1 }' > "$SCRATCH/stub/libcuda.c"
# The calls PyCUDA makes to word an error or report the version write through their pointers.
cat >> "$SCRATCH/stub/libcuda.c" <<'EOF'
int cuGetErrorName(int e, const char **s) { *s = "CUDA_ERROR_NO_DEVICE"; return 0; }
int cuGetErrorString(int e, const char **s) { *s = "no CUDA-capable device (stub)"; return 0; }
int cuDriverGetVersion(int *v) { *v = 13000; return 0; }
EOF
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$SCRATCH/stub/libcuda.so.1" "$SCRATCH/stub/libcuda.c"
echo "stub libcuda.so.1: $(grep -c . "$SCRATCH/stub/libcuda.c") functions"

"$PY" -m venv "$SCRATCH/venv"
"$SCRATCH/venv/bin/python" -m pip install -q numpy cython setuptools wheel protobuf

mkdir -p "$SCRATCH/tree"
git ls-files -z -co --exclude-standard | xargs -0 cp --parents -t "$SCRATCH/tree"
cp -r .whl "$SCRATCH/tree/"
cp lib/caffe/proto/caffe_pb2.py "$SCRATCH/tree/lib/caffe/proto/"
mkdir -p "$SCRATCH/home"

cd "$SCRATCH/tree"
status=0
HOME=$SCRATCH/home PATH=$SCRATCH/venv/bin:$PATH LIBCUDA=$SCRATCH/stub/libcuda.so.1 \
  OUT=$SCRATCH/logs BUILD_ONLY=1 BUILD_BUDGET=590 DEADLINE=600 MAKEFLAGS=-j2 \
  bash tests/gpu/run_on_gpu_machine.sh || status=$?
if [ $status -ne 0 ]; then
  tail -40 "$SCRATCH/logs/build.log"
  echo "build phase FAILED (status $status)"
  exit 1
fi
grep -E "nvcc: compiled|CUDA toolkit" "$SCRATCH/logs/build.log"
LD_LIBRARY_PATH=$SCRATCH/stub PYTHONPATH=/tmp/site:lib "$SCRATCH/venv/bin/python" - <<'EOF'
import pycuda
import pycuda.driver as driver
import caffe
import caffe.gpu  # noqa: F401  (the backend's modules import without a device)
try:
    driver.init()
except driver.Error as e:
    print('PyCUDA %s imports; cuInit through the stub: %s' % (pycuda.VERSION_TEXT, e))
else:
    raise SystemExit('cuInit succeeded against the stub')
EOF
echo "build phase OK (with $PY, ${CUDA_H%/include/cuda.h}, stub libcuda) in $ROOT's working tree"
