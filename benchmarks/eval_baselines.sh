#!/usr/bin/env bash
# The training-free baselines (image, text, sum, arithmetic) on the offline world exported in every benchmark layout.
#
#   benchmarks/eval_baselines.sh            # cir:demo, seed 0, 200 groups per split; updates docs/benchmarks.md
#
# Environment: BACKBONE (default cir:demo), SEED (0), N_GROUPS (200 per val/test split), SIZE (128 px),
# OUT (runs/eval-baselines), PY (the venv's python), DOCS (docs/benchmarks.md; empty to leave it alone).
# Writes OUT/data (the exports), OUT/results/*.json (one result per evaluation), OUT/rankings/*.json,
# OUT/commands.sh (the exact commands run) and benchmarks/results/eval_baselines.md (the table).
set -euo pipefail
cd "$(dirname "$0")/.."

BACKBONE=${BACKBONE:-cir:demo}
SEED=${SEED:-0}
N_GROUPS=${N_GROUPS:-200}  # not GROUPS: bash reserves that name
SIZE=${SIZE:-128}
OUT=${OUT:-runs/eval-baselines}
DOCS=${DOCS-docs/benchmarks.md}
if [[ -z "${PY:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
STRATEGIES=image,text,sum,arithmetic
DATA=$OUT/data
mkdir -p "$OUT/results" "$OUT/rankings" benchmarks/results
rm -f "$OUT/results/"*.json
COMMANDS=$OUT/commands.sh
: > "$COMMANDS"

run() {  # print, record (the venv's python as .venv/bin/python: no machine path in committed results) and run one command
  echo "+ $*" >&2
  echo "${*/#$PY/.venv/bin/python}" >> "$COMMANDS"
  "$@"
}

CIR=("$PY" -m cir.cli)
run "${CIR[@]}" scenes export --format all --out "$DATA" --seed "$SEED" --groups "$N_GROUPS" --train-groups 50 --size "$SIZE" --quiet
common() { echo --backbone "$BACKBONE" --strategy "$STRATEGIES" --compare --quiet --out "$OUT/results/$1.json" --save-rankings "$OUT/rankings/$1.json"; }
# shellcheck disable=SC2046
run "${CIR[@]}" eval cirr --root "$DATA/cirr" --split val $(common cirr)
# shellcheck disable=SC2046
run "${CIR[@]}" eval fashioniq --root "$DATA/fashioniq" --category all $(common fashioniq)
# shellcheck disable=SC2046
run "${CIR[@]}" eval circo --root "$DATA/circo" --split val $(common circo)
# shellcheck disable=SC2046
run "${CIR[@]}" eval triplets --csv "$DATA/triplets/triplets.csv" --images "$DATA/triplets/images" $(common triplets)
# shellcheck disable=SC2046
run "${CIR[@]}" eval triplets --csv "$DATA/triplets/triplets.csv" --images "$DATA/triplets/images" --database "$DATA/triplets/images" $(common triplets-database)
# text2image has no reference image: the text strategy only
run "${CIR[@]}" eval text2image --csv "$DATA/text2image/captions.csv" --images "$DATA/text2image/images" \
  --text-column caption --image-column image --backbone "$BACKBONE" --strategy text --quiet \
  --out "$OUT/results/text2image.json" --save-rankings "$OUT/rankings/text2image.json"

TABLE_ARGS=("$OUT/results" --commands "$COMMANDS" --out benchmarks/results/eval_baselines.md)
if [[ -n "$DOCS" ]]; then TABLE_ARGS+=(--docs "$DOCS"); fi
PYTHONPATH=${PYTHONPATH:-.} "$PY" benchmarks/eval_table.py "${TABLE_ARGS[@]}" > /dev/null
echo "wrote benchmarks/results/eval_baselines.md${DOCS:+ and updated $DOCS}" >&2
