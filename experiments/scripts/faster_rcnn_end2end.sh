#!/bin/bash
# Faster R-CNN, approximate joint (end-to-end) training, then testing of the final model.
#
# Usage: ./experiments/scripts/faster_rcnn_end2end.sh GPU NET DATASET [--set ...]
# Examples:
#   ./experiments/scripts/faster_rcnn_end2end.sh 0 VGG16 pascal_voc
#   ./experiments/scripts/faster_rcnn_end2end.sh 0,1,2,3 VGG16 coco    (4 GPUs, docs/parallel.md)
#   ./experiments/scripts/faster_rcnn_end2end.sh cpu TOY toy          (make demo)
#   ITERS=100 ./experiments/scripts/faster_rcnn_end2end.sh 0 ZF pascal_voc --set EXP_DIR smoke
# ITERS overrides the number of iterations (default: 70000 for PASCAL VOC, 490000 for COCO).
# RESULT names the run's summary JSON (default: beside the log): the training and test results
# (tools/train_net.py and tools/test_net.py --result files) and the log's path.

set -e
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/../.."
source experiments/scripts/_common.sh

case "$DATASET" in
  coco) DEFAULT_ITERS=490000 ;;
  toy)  DEFAULT_ITERS=4000 ;;
  *)    DEFAULT_ITERS=70000 ;;
esac
ITERS=${ITERS:-$DEFAULT_ITERS}
CFG_ARGS=(--cfg experiments/cfgs/faster_rcnn_end2end.yml "${CFG_ARGS[@]}")

train_then_test "models/${PT_DIR}/${NET}/faster_rcnn_end2end/solver.prototxt" \
  "models/${PT_DIR}/${NET}/faster_rcnn_end2end/test.prototxt"

DEMO_ARGS=()
if [ "$DATASET" = toy ]; then
  ./tools/demo.py --gpu "$TEST_GPU_ID" --net toy --model "$NET_FINAL" \
    --result "${RUN_RESULTS}_demo.json" "${CFG_ARGS[@]}" "${EXTRA_ARGS[@]}"
  DEMO_ARGS=(demo="@${RUN_RESULTS}_demo.json")
fi
write_run_result status=done final_model="$NET_FINAL" train="@$TRAIN_RESULT" \
  test="@$TEST_RESULT" "${DEMO_ARGS[@]}"
