#!/usr/bin/env bash
# In-distribution vs shifted: the same world (seed, groups, size) exported with the default renderer and phrasings
# (what every training run uses) and with the shifted ones (`--world shifted`, no training uses them), plus the two
# one-shift ablations on CIRR, evaluated with every strategy; prints the side-by-side tables (docs/benchmarks.md).
#
#   benchmarks/shifted_world.sh      # cir:demo, seed 0, 200 groups per split, 128 px; OUT=runs/shifted-world
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/shifted-world}
S=${STRATEGIES:-image,text,sum,arithmetic,pic2word,combiner}
EXPORT=(--seed 0 --groups 200 --train-groups 50 --size 128 --quiet)
mkdir -p "$OUT/results"
for W in default shifted; do
  "$PY" -m cir.cli scenes export --format cirr --out "$OUT/$W/cirr" "${EXPORT[@]}" --world "$W"
  "$PY" -m cir.cli scenes export --format triplets --out "$OUT/$W/triplets" "${EXPORT[@]}" --world "$W"
  "$PY" -m cir.cli eval cirr --root "$OUT/$W/cirr" --split val --backbone cir:demo --strategy "$S" --compare --quiet --out "$OUT/results/$W-cirr.json"
  "$PY" -m cir.cli eval triplets --csv "$OUT/$W/triplets/triplets.csv" --images "$OUT/$W/triplets/images" \
    --database "$OUT/$W/triplets/images" --backbone cir:demo --strategy "$S" --compare --quiet --out "$OUT/results/$W-triplets.json"
done
for W in shifted-render shifted-text; do
  "$PY" -m cir.cli scenes export --format cirr --out "$OUT/$W/cirr" "${EXPORT[@]}" --world "$W"
  "$PY" -m cir.cli eval cirr --root "$OUT/$W/cirr" --split val --backbone cir:demo --strategy "$S" --compare --quiet --out "$OUT/results/$W-cirr.json"
done
"$PY" benchmarks/shifted_table.py "$OUT/results"
