# Sourced by the experiment scripts: argument parsing, the dataset table, logging and result files.
#
#   GPU      device id, or a list of them (0,1,2,3: training runs data-parallel, one process per
#            GPU, see docs/parallel.md; testing uses the first); 'cpu' or a negative number runs
#            on the CPU
#   NET      network folder under models/<dir>/ (ZF, VGG_CNN_M_1024, VGG16, ResNet-50,
#            ResNet-101, TOY, TOY_ResNet)
#   DATASET  a name of experiments/dataset_splits.txt (pascal_voc, pascal_voc_0712, coco, toy) or a
#            custom dataset data/<name>/ (<name>_train, <name>_test)
#   further arguments go to the tools, e.g. --set EXP_DIR foo RNG_SEED 42
#
# Sets GPU_ID (as given: the training tools take the list) TEST_GPU_ID (its first device, for the
# tools that run on one) NET NET_lc DATASET TRAIN_IMDB TEST_IMDB PT_DIR EXTRA_ARGS (array) CFG_ARGS (array;
# the dataset's cfg file, e.g. toy.yml) WEIGHTS_ARGS (array) LOG, RUN_RESULTS (the prefix of this
# run's result files, beside LOG) and RESULT (this run's summary: $RESULT if the caller set it,
# else ${RUN_RESULTS}_result.json), and sends all output to the terminal and to $LOG.
# The tools hand their results over as JSON files (--result); the scripts read those files, never
# the log.

if [ $# -lt 3 ]; then
  echo "usage: $0 GPU NET DATASET [--set KEY VALUE ...]" >&2
  echo "  GPU: device id, a list such as 0,1,2,3 (data-parallel training), or 'cpu' (or a" >&2
  echo "       negative number) for the CPU" >&2
  echo "  DATASET: pascal_voc, pascal_voc_0712, coco, toy, or a custom dataset name (data/<name>/)" >&2
  exit 2
fi

GPU_ID=$1
TEST_GPU_ID=${GPU_ID%%,*}
NET=$2
NET_lc=${NET,,}
DATASET=$3
EXTRA_ARGS=("${@:4}")

# The dataset's row of the table (the '*' row for a custom dataset; '-' is empty, {} its name).
SPLITS=experiments/dataset_splits.txt
split_row() { awk -v d="$1" '!/^[[:space:]]*#/ && NF && $1 == d {print; exit}' "$SPLITS"; }
ROW=$(split_row "$DATASET")
CUSTOM=0
if [ -z "$ROW" ]; then ROW=$(split_row '*'); CUSTOM=1; fi
read -r _ TRAIN_IMDB TEST_IMDB PT_DIR _ DATASET_CFG INIT <<< "$ROW"
TRAIN_IMDB=${TRAIN_IMDB//\{\}/$DATASET}
TEST_IMDB=${TEST_IMDB//\{\}/$DATASET}
if [ "$CUSTOM" = 1 ] && [ -d "models/${DATASET}/${NET}" ]; then PT_DIR="$DATASET"; fi
CFG_ARGS=()
if [ "$DATASET_CFG" != "-" ]; then CFG_ARGS=(--cfg "$DATASET_CFG"); fi

# Pretrained ImageNet weights (data/README.md), unless the dataset's nets start from random ones.
if [ "$INIT" = random ]; then
  WEIGHTS=${WEIGHTS:-}
else
  case "$NET" in
    # Kaiming He's release names its ImageNet models so (data/README.md, docs/resnet.md).
    ResNet-*) WEIGHTS=${WEIGHTS:-data/imagenet_models/${NET}-model.caffemodel} ;;
    *) WEIGHTS=${WEIGHTS:-data/imagenet_models/${NET}.v2.caffemodel} ;;
  esac
fi
WEIGHTS_ARGS=()
if [ -n "$WEIGHTS" ]; then WEIGHTS_ARGS=(--weights "$WEIGHTS"); fi

# Threads: the cores the process may use by default (docs/cpu_performance.md); OMP_NUM_THREADS,
# when set, is passed on (the trained model is the same at any count).

mkdir -p experiments/logs
LOG="experiments/logs/$(basename "$0" .sh)_${NET}_$(date +'%Y-%m-%d_%H-%M-%S').txt"
RUN_RESULTS="${LOG%.txt}"
RESULT=${RESULT:-${RUN_RESULTS}_result.json}
exec &> >(tee -a "$LOG")
echo "Logging output to $LOG"

# result_value FILE KEY: a value of a tool's result file.
result_value() { ./tools/result_file.py get "$1" "$2"; }

# write_run_result KEY=VALUE ...: this run's summary in $RESULT (KEY=@FILE embeds a result file).
write_run_result() { ./tools/result_file.py write "$RESULT" log="$LOG" dataset="$DATASET" \
  net="$NET" train_imdb="$TRAIN_IMDB" test_imdb="$TEST_IMDB" "$@"; }
write_run_result status=running
# Any step that fails (set -e) ends the run with its summary saying 'failed', unless a step
# already wrote a more precise status.
mark_failed_on_error() {
  local code=$?
  if [ "$code" != 0 ] && [ "$(result_value "$RESULT" status 2>/dev/null)" = running ]; then
    write_run_result status=failed
  fi
}
trap mark_failed_on_error EXIT

# Trains with SOLVER, then tests the final snapshot with TEST_DEF; sets NET_FINAL, TRAIN_RESULT
# and TEST_RESULT (the tools' result files). A failed training ends the script with the run's
# summary saying so: status 'diverged' (a NaN/Inf loss) or 'failed', with the training result.
train_then_test() {
  local solver=$1 test_def=$2 train_status=0
  TRAIN_RESULT="${RUN_RESULTS}_train.json"
  TEST_RESULT="${RUN_RESULTS}_test.json"
  rm -f "$TRAIN_RESULT"
  set -x
  time ./tools/train_net.py --gpu "$GPU_ID" \
    --solver "$solver" \
    "${WEIGHTS_ARGS[@]}" \
    --imdb "$TRAIN_IMDB" \
    --iters "$ITERS" \
    --result "$TRAIN_RESULT" \
    "${CFG_ARGS[@]}" \
    "${EXTRA_ARGS[@]}" || train_status=$?
  set +x
  if [ "$train_status" != 0 ]; then
    local status=failed
    if [ -f "$TRAIN_RESULT" ] && [ "$(result_value "$TRAIN_RESULT" status)" = diverged ]; then
      status=diverged
    fi
    write_run_result status="$status" train="@$TRAIN_RESULT?"
    exit "$train_status"
  fi
  NET_FINAL=$(result_value "$TRAIN_RESULT" final_model)

  set -x
  time ./tools/test_net.py --gpu "$TEST_GPU_ID" \
    --def "$test_def" \
    --net "$NET_FINAL" \
    --imdb "$TEST_IMDB" \
    --result "$TEST_RESULT" \
    "${CFG_ARGS[@]}" \
    "${EXTRA_ARGS[@]}"
  set +x
}
