#!/bin/bash
# Faster R-CNN, joint (end-to-end) training, then testing of the final model.
#
# Usage: ./experiments/scripts/faster_rcnn_end2end.sh GPU NET DATASET [--set ...]
# Examples:
#   ./experiments/scripts/faster_rcnn_end2end.sh 0 VGG16 pascal_voc
#   ./experiments/scripts/faster_rcnn_end2end.sh 0,1,2,3 VGG16 coco    (4 GPUs, docs/parallel.md)
#   ./experiments/scripts/faster_rcnn_end2end.sh cpu TOY toy          (make demo)
#   ITERS=100 ./experiments/scripts/faster_rcnn_end2end.sh 0 ZF pascal_voc --set EXP_DIR smoke
#   JOINT=nonapprox ./experiments/scripts/faster_rcnn_end2end.sh cpu TOY toy
# ITERS overrides the number of iterations (default: 70000 for PASCAL VOC, 490000 for COCO).
# JOINT chooses the joint training of the paper's Sec. 3.2 (docs/joint_training.md):
#   approx       approximate joint training, the release's (default): RoI pooling, no gradient
#                through the proposals; models/<dir>/<NET>/faster_rcnn_end2end/
#   nonapprox    non-approximate joint training: ROIWarping and the proposal layers' coordinate
#                backward; models/<dir>/<NET>/faster_rcnn_end2end_nonapprox/ (ZF, VGG16, TOY),
#                with cfg's default coordinate gradient: foreground RoIs only, x 0.1 (the exact
#                derivative, an ablation: --set TRAIN.COORD_GRADIENT_ROIS all
#                TRAIN.COORD_GRADIENT_SCALE 1)
#   approx_warp  approximate joint training with the nonapprox nets' ROIWarping: their
#                coordinate gradient off (cfg TRAIN.COORD_GRADIENT False)
# RESULT names the run's summary JSON (default: beside the log): the training and test results
# (tools/train_net.py and tools/test_net.py --result files) and the log's path.

set -e
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/../.."
JOINT=${JOINT:-approx}
JOINT_CFG=()
case "$JOINT" in
  approx)      METHOD=faster_rcnn_end2end ;;
  nonapprox)   METHOD=faster_rcnn_end2end_nonapprox ;;
  approx_warp) METHOD=faster_rcnn_end2end_nonapprox
               JOINT_CFG=(--cfg experiments/cfgs/no_coord_gradient.yml) ;;
  *) echo "JOINT=$JOINT: expected approx, nonapprox or approx_warp" >&2; exit 2 ;;
esac
source experiments/scripts/_common.sh

case "$DATASET" in
  coco) DEFAULT_ITERS=490000 ;;
  toy)  DEFAULT_ITERS=4000 ;;
  *)    DEFAULT_ITERS=70000 ;;
esac
ITERS=${ITERS:-$DEFAULT_ITERS}
CFG_ARGS=(--cfg experiments/cfgs/faster_rcnn_end2end.yml "${CFG_ARGS[@]}" "${JOINT_CFG[@]}")
NETS="models/${PT_DIR}/${NET}/${METHOD}"
if [ ! -f "$NETS/solver.prototxt" ]; then
  echo "JOINT=$JOINT needs $NETS/ (solver.prototxt, test.prototxt); $NET has none" >&2
  exit 2
fi

train_then_test "$NETS/solver.prototxt" "$NETS/test.prototxt"

DEMO_ARGS=()
if [ "$DATASET" = toy ]; then
  # The test run's copy of the net holds all its settings: the demo needs it and the model only.
  ./tools/demo.py --gpu "$TEST_GPU_ID" --net toy --def "$(result_value "$TEST_RESULT" prototxt)" \
    --model "$NET_FINAL" --result "${RUN_RESULTS}_demo.json"
  DEMO_ARGS=(demo="@${RUN_RESULTS}_demo.json")
fi
write_run_result status=done joint="$JOINT" final_model="$NET_FINAL" train="@$TRAIN_RESULT" \
  test="@$TEST_RESULT" "${DEMO_ARGS[@]}"
