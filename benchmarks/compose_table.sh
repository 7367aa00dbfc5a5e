#!/usr/bin/env bash
# Learned composition on the offline world: train Pic2Word, the Combiner and the fine-tuned backbone (one per
# batch sampler) with their default presets, then evaluate every strategy on the CIRR-layout export (val) and on
# domain conversion; writes benchmarks/results/compose.md and the compose section of docs/benchmarks.md.
#
#   benchmarks/compose_table.sh           # cir:demo, seed 0; about an hour on 2 free CPU cores
#
# Environment: BACKBONE (cir:demo), SEED (0), N_GROUPS (200 val/test groups, as eval_baselines.sh), SIZE (128 px),
# OUT (runs/compose-table), PY (the venv's python), DOCS (docs/benchmarks.md; empty to leave it alone),
# SAMPLERS (random,unique-target,group-exclusive,group-inclusive), SKIP_TRAIN (1: reuse OUT/models).
# Order: Combiner, Pic2Word, their evaluations, then one fine-tuning and its evaluation per sampler; the table script
# (benchmarks/compose_table.py OUT --commands OUT/commands.sh) also reads a partial run.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKBONE=${BACKBONE:-cir:demo}
SEED=${SEED:-0}
N_GROUPS=${N_GROUPS:-200}
SIZE=${SIZE:-128}
OUT=${OUT:-runs/compose-table}
DOCS=${DOCS-docs/benchmarks.md}
SAMPLERS=${SAMPLERS:-random,unique-target,group-exclusive,group-inclusive}
if [[ -z "${PY:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
CIR=("$PY" -m cir.cli)
MODELS=$OUT/models
mkdir -p "$OUT/results" "$MODELS" benchmarks/results
COMMANDS=$OUT/commands.sh
: > "$COMMANDS"
# the commands are recorded with the venv's python as .venv/bin/python: no machine path in committed results
run() { echo "+ $*" >&2; echo "${*/#$PY/.venv/bin/python}" >> "$COMMANDS"; "$@"; }
timed() { local t0=$SECONDS; "$@"; echo "$(( SECONDS - t0 ))" > "$OUT/results/seconds-$TAG.txt"; }

EXPORT=("${CIR[@]}" scenes export --format cirr --out "$OUT/data/cirr" --seed "$SEED" --groups "$N_GROUPS" --train-groups 50 --size "$SIZE" --quiet)
if [[ ! -d "$OUT/data/cirr" ]]; then run "${EXPORT[@]}"; else echo "${EXPORT[*]}  # (reused: already there)" >> "$COMMANDS"; fi
ev() { echo --split val --quiet --root "$OUT/data/cirr" --out "$OUT/results/$1.json"; }
train() { [[ "${SKIP_TRAIN:-0}" != 1 ]]; }
# the composers first, and their table, so a partial run still measures them
if train; then
  rm -rf "$MODELS/composers" "$MODELS/composers-combiner"
  TAG=combiner timed run "${CIR[@]}" train combiner --backbone "$BACKBONE" --seed "$SEED" --out "$MODELS/composers-combiner"
  TAG=pic2word timed run "${CIR[@]}" train pic2word --backbone "$BACKBONE" --seed "$SEED" --out "$MODELS/composers"
  cp "$MODELS/composers-combiner/combiner.safetensors" "$MODELS/composers/"
fi
# shellcheck disable=SC2046
run "${CIR[@]}" eval cirr --backbone "$BACKBONE" --strategy image,text,sum,arithmetic,pic2word,combiner --composer "$MODELS/composers" $(ev cirr)
run env PYTHONPATH=. "$PY" benchmarks/domain_conversion.py --backbone "$BACKBONE" --composer "$MODELS/composers" --seed "$SEED" --out "$OUT/results/domain.json" > /dev/null
for s in ${SAMPLERS//,/ }; do
  if train; then
    rm -rf "$MODELS/finetune-$s"
    TAG=finetune-$s timed run "${CIR[@]}" train finetune --backbone "$BACKBONE" --seed "$SEED" --sampler "$s" --out "$MODELS/finetune-$s"
  fi
  # shellcheck disable=SC2046
  run "${CIR[@]}" eval cirr --backbone "cir:$MODELS/finetune-$s" --strategy sum $(ev "cirr-finetune-$s")
done
TABLE_ARGS=("$OUT" --commands "$COMMANDS" --out benchmarks/results/compose.md)
if [[ -n "$DOCS" ]]; then TABLE_ARGS+=(--docs "$DOCS"); fi
PYTHONPATH=${PYTHONPATH:-.} "$PY" benchmarks/compose_table.py "${TABLE_ARGS[@]}" > /dev/null
echo "wrote benchmarks/results/compose.md${DOCS:+ and updated $DOCS}" >&2
