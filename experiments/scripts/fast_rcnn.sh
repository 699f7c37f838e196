#!/bin/bash
# Fast R-CNN on selective search proposals (the detector without an RPN), then testing.
#
# Usage: ./experiments/scripts/fast_rcnn.sh GPU NET DATASET [--set ...]
# Example: ./experiments/scripts/fast_rcnn.sh 0 VGG_CNN_M_1024 pascal_voc
# ITERS overrides the number of iterations (default: 40000 for PASCAL VOC, 280000 for COCO).
# Needs data/selective_search_data (data/README.md).

set -e
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/../.."
source experiments/scripts/_common.sh

case "$DATASET" in
  coco) DEFAULT_ITERS=280000 ;;
  toy)
    echo "The toy dataset has no selective search proposals; use faster_rcnn_end2end.sh" >&2
    exit 1
    ;;
  *)    DEFAULT_ITERS=40000 ;;
esac
ITERS=${ITERS:-$DEFAULT_ITERS}
CFG_ARGS=(--cfg experiments/cfgs/fast_rcnn.yml "${CFG_ARGS[@]}")

set -x
time ./tools/train_net.py --gpu "$GPU_ID" \
  --solver "models/${PT_DIR}/${NET}/fast_rcnn/solver.prototxt" \
  "${WEIGHTS_ARGS[@]}" \
  --imdb "$TRAIN_IMDB" \
  --iters "$ITERS" \
  "${CFG_ARGS[@]}" \
  "${EXTRA_ARGS[@]}"
set +x

NET_FINAL=$(log_value "^Wrote snapshot to:" 4)
if [ -z "$NET_FINAL" ]; then echo "no final snapshot found in $LOG" >&2; exit 1; fi

set -x
time ./tools/test_net.py --gpu "$GPU_ID" \
  --def "models/${PT_DIR}/${NET}/fast_rcnn/test.prototxt" \
  --net "$NET_FINAL" \
  --imdb "$TEST_IMDB" \
  "${CFG_ARGS[@]}" \
  "${EXTRA_ARGS[@]}"
