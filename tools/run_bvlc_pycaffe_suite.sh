#!/usr/bin/env bash
# Runs BVLC Caffe's own pycaffe test suite (python/caffe/test), unchanged, against this project's
# lib/caffe, from a copy of BVLC/caffe on your machine:
#
#   tools/run_bvlc_pycaffe_suite.sh /path/to/caffe            a checkout (git clone
#                                                              https://github.com/BVLC/caffe)
#   tools/run_bvlc_pycaffe_suite.sh /path/to/caffe.git         or a bare/mirror git directory
#
# The suite's test_draw reads every prototxt under models/ and examples/ three folders above the
# test files, so the tests run inside a scratch copy of python/, models/ and examples/ (your
# checkout is not written to). test_draw's pictures need Graphviz's `dot` (apt-get install
# graphviz). The exit status is unittest's; the last lines say "Ran N tests" and OK or FAILED.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 BVLC_CAFFE_DIR (a checkout or a git directory of BVLC/caffe)" >&2
    exit 2
fi
SRC=$1
LIB="$(cd "$(dirname "$0")/.." && pwd)/lib"
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
if [ -d "$SRC/python/caffe/test" ]; then
    cp -r "$SRC/python" "$SRC/models" "$SRC/examples" "$SCRATCH/"
elif git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$SRC" archive HEAD python models examples | tar -x -C "$SCRATCH"
else
    echo "error: $SRC has no python/caffe/test and is not a git directory of BVLC/caffe" >&2
    exit 2
fi
if ! command -v dot >/dev/null; then
    echo "warning: Graphviz's dot is not on PATH; test_draw will fail (apt-get install graphviz)" >&2
fi
echo "BVLC caffe: $(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo "$SRC (not a git checkout)")"
echo "caffe package: $LIB/caffe"
# The test folder is the start and top-level folder, so `import caffe` finds lib/caffe (on
# PYTHONPATH) and not the copy's python/caffe.
cd "$SCRATCH/python/caffe/test"
PYTHONPATH="$LIB${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1 \
    python3 -m unittest discover -s . -t . -v
