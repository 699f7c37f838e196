#!/bin/bash
# Faster R-CNN, 4-step alternating training (paper Sec. 3.2), then testing of the final model.
#
# Usage: ./experiments/scripts/faster_rcnn_alt_opt.sh GPU NET DATASET [--set ...]
# Examples:
#   ./experiments/scripts/faster_rcnn_alt_opt.sh 0 ZF pascal_voc
#   ./experiments/scripts/faster_rcnn_alt_opt.sh 0,1 ZF pascal_voc    (each step on 2 GPUs)
#   ALT_OPT_ITERS=200,100,200,100 ./experiments/scripts/faster_rcnn_alt_opt.sh cpu TOY toy
# ALT_OPT_ITERS overrides the iterations of the 4 steps, "rpn1,frcn1,rpn2,frcn2"
# (default: the paper's 80000,40000,80000,40000 for PASCAL VOC).
# UNSHARED=1 stops after step 2 and tests the stage-1 detector on the stage-1 RPN's proposals
# (the paper's 'unshared' rows of Tables 2 and 3).
# RESULT names the run's summary JSON (default: beside the log): the training, proposal and test
# results (the tools' --result files) and the log's path.

set -e
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/../.."
source experiments/scripts/_common.sh

case "$DATASET" in
  coco)
    echo "The release trains COCO end-to-end only; use faster_rcnn_end2end.sh" >&2
    exit 1
    ;;
  toy) DEFAULT_ITERS=4000,2000,4000,2000 ;;
  *)   DEFAULT_ITERS=80000,40000,80000,40000 ;;
esac
ALT_OPT_ITERS=${ALT_OPT_ITERS:-$DEFAULT_ITERS}
UNSHARED_ARGS=()
if [ "${UNSHARED:-0}" = 1 ]; then UNSHARED_ARGS=(--unshared); fi
CFG_ARGS=(--cfg experiments/cfgs/faster_rcnn_alt_opt.yml "${CFG_ARGS[@]}")

TRAIN_RESULT="${RUN_RESULTS}_train.json"
TEST_RESULT="${RUN_RESULTS}_test.json"
PROPOSALS_RESULT="${RUN_RESULTS}_proposals.json"
set -x
time ./tools/train_faster_rcnn_alt_opt.py --gpu "$GPU_ID" \
  --net_name "$NET" \
  "${WEIGHTS_ARGS[@]}" \
  --imdb "$TRAIN_IMDB" \
  --models "models/${PT_DIR}/${NET}/faster_rcnn_alt_opt" \
  --iters "$ALT_OPT_ITERS" \
  --result "$TRAIN_RESULT" \
  "${UNSHARED_ARGS[@]}" \
  "${CFG_ARGS[@]}" \
  "${EXTRA_ARGS[@]}"
set +x
NET_FINAL=$(result_value "$TRAIN_RESULT" final_model)

PROPOSAL_ARGS=()
if [ "${UNSHARED:-0}" = 1 ]; then
  RPN_FINAL=$(result_value "$TRAIN_RESULT" final_rpn_model)
  set -x
  ./tools/rpn_generate.py --gpu "$TEST_GPU_ID" \
    --def "models/${PT_DIR}/${NET}/faster_rcnn_alt_opt/rpn_test.pt" \
    --net "$RPN_FINAL" --imdb "$TEST_IMDB" --result "$PROPOSALS_RESULT" \
    "${CFG_ARGS[@]}" "${EXTRA_ARGS[@]}"
  set +x
  PROPOSAL_ARGS=(--proposals "$(result_value "$PROPOSALS_RESULT" proposals)")
fi

set -x
time ./tools/test_net.py --gpu "$TEST_GPU_ID" \
  --def "models/${PT_DIR}/${NET}/faster_rcnn_alt_opt/faster_rcnn_test.pt" \
  "${PROPOSAL_ARGS[@]}" \
  --net "$NET_FINAL" \
  --imdb "$TEST_IMDB" \
  --result "$TEST_RESULT" \
  "${CFG_ARGS[@]}" \
  "${EXTRA_ARGS[@]}"
set +x
write_run_result status=done final_model="$NET_FINAL" train="@$TRAIN_RESULT" \
  test="@$TEST_RESULT" proposals="@$PROPOSALS_RESULT?"
