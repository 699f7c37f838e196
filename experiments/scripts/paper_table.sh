#!/bin/bash
# One of the paper's tables as an experiment: trains and tests what its rows need and writes
# experiments/results/<TABLE>.md (or $PAPER_RESULTS_DIR/<TABLE>.md) with the paper's values
# beside ours. docs/paper.md lists the tables, data and weights.
#
# Usage: ./experiments/scripts/paper_table.sh TABLE GPU NET DATASET [--set KEY VALUE ...]
#   TABLE: table2 table3 table5 table8 table9 table10 table11 fig4 sec32
# Examples:
#   ./experiments/scripts/paper_table.sh table2 0 ZF pascal_voc
#   ITERS=20 ALT_OPT_ITERS=10,10,10,10 ./experiments/scripts/paper_table.sh table9 cpu TOY toy
#   ITERS=1000 ./experiments/scripts/paper_table.sh sec32 cpu TOY toy [--seeds 1,2,3,4,5]
# ITERS / ALT_OPT_ITERS shorten every training run of the table (the scripts' overrides).

set -e
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/../.."
if [ $# -lt 4 ]; then
  echo "usage: $0 TABLE GPU NET DATASET [--set KEY VALUE ...]" >&2
  echo "  TABLE: table2 table3 table5 table8 table9 table10 table11 fig4 sec32" >&2
  exit 2
fi
TABLE=$1
GPU_ID=$2
NET=$3
DATASET=$4
EXTRA=("${@:5}")
exec ./experiments/paper_tables.py "$TABLE" --gpu "$GPU_ID" --net "$NET" --dataset "$DATASET" \
  "${EXTRA[@]}"
