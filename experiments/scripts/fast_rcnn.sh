#!/bin/bash
# Fast R-CNN on selective search proposals (the detector without an RPN), then testing.
# --set TRAIN.PROPOSAL_METHOD edge_boxes TEST.PROPOSAL_METHOD edge_boxes uses EdgeBoxes
# (data/edge_boxes_data/<imdb>.mat, the selective search files' layout): Tables 2, 3 baselines.
#
# Usage: ./experiments/scripts/fast_rcnn.sh GPU NET DATASET [--set ...]
# Example: ./experiments/scripts/fast_rcnn.sh 0 VGG_CNN_M_1024 pascal_voc
# ITERS overrides the number of iterations (default: 40000 for PASCAL VOC, 280000 for COCO).
# Needs data/selective_search_data (data/README.md); COCO: data/coco_proposals/selective_search
# (also edge_boxes, mcg).

set -e
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/../.."
source experiments/scripts/_common.sh

case "$DATASET" in
  coco) DEFAULT_ITERS=280000 ;;
  # The toy dataset ships no proposals: only with <DATA_DIR>/selective_search_data/toy_*.mat
  # (as the tests write). Its detector is the alt-opt stage-1 Fast R-CNN net.
  toy)  DEFAULT_ITERS=2000 ;;
  *)    DEFAULT_ITERS=40000 ;;
esac
ITERS=${ITERS:-$DEFAULT_ITERS}
SOLVER="models/${PT_DIR}/${NET}/fast_rcnn/solver.prototxt"
TEST_DEF="models/${PT_DIR}/${NET}/fast_rcnn/test.prototxt"
if [ ! -d "models/${PT_DIR}/${NET}/fast_rcnn" ]; then
  # test_net.py tests the Faster R-CNN test net's detector alone (no RPN) on the proposals.
  SOLVER="models/${PT_DIR}/${NET}/faster_rcnn_alt_opt/stage1_fast_rcnn_solver.pt"
  TEST_DEF="models/${PT_DIR}/${NET}/faster_rcnn_alt_opt/faster_rcnn_test.pt"
fi
CFG_ARGS=(--cfg experiments/cfgs/fast_rcnn.yml "${CFG_ARGS[@]}")

train_then_test "$SOLVER" "$TEST_DEF"
write_run_result status=done final_model="$NET_FINAL" train="@$TRAIN_RESULT" \
  test="@$TEST_RESULT"
