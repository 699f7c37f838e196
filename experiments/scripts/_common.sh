# Sourced by the experiment scripts: argument parsing, dataset names and logging.
#
#   GPU      device id; 'cpu' or a negative number runs on the CPU
#   NET      network folder under models/<dir>/ (ZF, VGG_CNN_M_1024, VGG16, TOY)
#   DATASET  pascal_voc, pascal_voc_0712, coco, toy, or a custom dataset data/<name>/ (<name>_train, <name>_test)
#   further arguments go to the tools, e.g. --set EXP_DIR foo RNG_SEED 42
#
# Sets GPU_ID NET NET_lc DATASET TRAIN_IMDB TEST_IMDB PT_DIR EXTRA_ARGS (array) CFG_ARGS (array;
# toy.yml for the toy dataset) LOG, and sends all output to the terminal and to $LOG.

if [ $# -lt 3 ]; then
  echo "usage: $0 GPU NET DATASET [--set KEY VALUE ...]" >&2
  echo "  GPU: device id, or 'cpu' (or a negative number) for the CPU" >&2
  echo "  DATASET: pascal_voc, coco, toy, or a custom dataset name (data/<name>/)" >&2
  exit 2
fi

GPU_ID=$1
NET=$2
NET_lc=${NET,,}
DATASET=$3
EXTRA_ARGS=("${@:4}")
CFG_ARGS=()

case "$DATASET" in
  pascal_voc)
    TRAIN_IMDB="voc_2007_trainval"
    TEST_IMDB="voc_2007_test"
    PT_DIR="pascal_voc"
    ;;
  pascal_voc_0712)
    # VOC 2007 trainval + 2012 trainval, the paper's "07+12" (Table 3)
    TRAIN_IMDB="voc_2007_trainval+voc_2012_trainval"
    TEST_IMDB="voc_2007_test"
    PT_DIR="pascal_voc"
    ;;
  coco)
    TRAIN_IMDB="coco_2014_train"
    TEST_IMDB="coco_2014_minival"
    PT_DIR="coco"
    ;;
  toy)
    TRAIN_IMDB="toy_train"
    TEST_IMDB="toy_test"
    PT_DIR="toy"
    CFG_ARGS=(--cfg experiments/cfgs/toy.yml)
    ;;
  *)
    # A custom dataset reuses the PASCAL VOC nets (the tools fit them to its classes) unless
    # models/<name>/<NET>/ exists.
    TRAIN_IMDB="${DATASET}_train"
    TEST_IMDB="${DATASET}_test"
    if [ -d "models/${DATASET}/${NET}" ]; then PT_DIR="$DATASET"; else PT_DIR="pascal_voc"; fi
    ;;
esac

# Pretrained ImageNet weights (data/README.md); the toy net trains from random weights.
if [ "$DATASET" = toy ]; then
  WEIGHTS=${WEIGHTS:-}
else
  WEIGHTS=${WEIGHTS:-data/imagenet_models/${NET}.v2.caffemodel}
fi
WEIGHTS_ARGS=()
if [ -n "$WEIGHTS" ]; then WEIGHTS_ARGS=(--weights "$WEIGHTS"); fi

# On the CPU, one OpenMP thread per process unless asked otherwise: the runtime's im2col splits
# channels across OpenMP threads, and where other work is running a parallel region waits for its
# threads to be scheduled: on a busy 2-core machine that made the toy training several times slower.
case "$GPU_ID" in
  cpu|-*) export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} ;;
esac

mkdir -p experiments/logs
LOG="experiments/logs/$(basename "$0" .sh)_${NET}_$(date +'%Y-%m-%d_%H-%M-%S').txt"
exec &> >(tee -a "$LOG")
echo "Logging output to $LOG"

# The last line starting with $1 in the log, its field $2 (waits for tee to catch up).
log_value() {
  local value=""
  for _ in $(seq 50); do
    value=$(grep "$1" "$LOG" | tail -n 1 | awk "{print \$$2}")
    [ -n "$value" ] && break
    sleep 0.1
  done
  echo "$value"
}

# Trains with SOLVER, then tests the final snapshot with TEST_DEF; sets NET_FINAL.
train_then_test() {
  local solver=$1 test_def=$2
  set -x
  time ./tools/train_net.py --gpu "$GPU_ID" \
    --solver "$solver" \
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
    --def "$test_def" \
    --net "$NET_FINAL" \
    --imdb "$TEST_IMDB" \
    "${CFG_ARGS[@]}" \
    "${EXTRA_ARGS[@]}"
  set +x
}
