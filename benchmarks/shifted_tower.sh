#!/usr/bin/env bash
# The image tower and the triplet test, in-distribution vs shifted: exports the seed-000-style triplet test
# (300 queries, 1,000-image gallery) and the CIRR layout in both worlds, then measures each backbone once
# (benchmarks/shifted_tower.py: object-set recognition, caption R@1, triplet top-1 per edit kind, CIRR R@1).
#
#   benchmarks/shifted_tower.sh                         # cir:demo; ROOT=runs/shifted-tower
#   BACKBONES="cir:demo cir:/work/tower-out/generalise" benchmarks/shifted_tower.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ROOT=${ROOT:-runs/shifted-tower}
BACKBONES=${BACKBONES:-cir:demo}
for W in default shifted; do
  [ -f "$ROOT/tt-$W/cir_export.json" ] || "$PY" -m cir.cli scenes export --format triplet-test --groups 300 --size 128 --world "$W" --out "$ROOT/tt-$W" --quiet
  [ -f "$ROOT/cirr-$W/cir_export.json" ] || "$PY" -m cir.cli scenes export --format cirr --groups 200 --train-groups 50 --size 128 --world "$W" --out "$ROOT/cirr-$W" --quiet
done
OUTS=()
for B in $BACKBONES; do
  NAME=$(echo "$B" | tr -c 'a-zA-Z0-9\n' '_')
  "$PY" benchmarks/shifted_tower.py --backbone "$B" --root "$ROOT" --out "$ROOT/results/$NAME.json" > /dev/null
  OUTS+=("$ROOT/results/$NAME.json")
done
"$PY" benchmarks/shifted_tower.py --table "${OUTS[@]}"
