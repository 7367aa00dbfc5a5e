#!/usr/bin/env bash
# The qformer measurements of docs/benchmarks.md ("The Q-Former on the offline world"): exports of the default and
# the shifted world (CIRR layout), one `cir train qformer` run per pooling x sampler asked for, the evaluation of
# every strategy beside them on both worlds, the latency of one query and the attention maps.
#   benchmarks/qformer_table.sh [ROOT]        (default ROOT: runs/qf; VARIANTS="mean:group-exclusive max:..." to choose)
set -euo pipefail
ROOT=${1:-runs/qf}
PY=${PY:-.venv/bin/python}
VARIANTS=${VARIANTS:-"mean:group-exclusive max:group-exclusive mean:group-inclusive mean:random mean:unique-target max:group-inclusive"}
mkdir -p "$ROOT/models" "$ROOT/results" "$ROOT/logs"
$PY -m cir.cli scenes export --format cirr --out "$ROOT/data/cirr" --seed 0 --groups 200 --train-groups 50 --size 128 --quiet
$PY -m cir.cli scenes export --format cirr --world shifted --out "$ROOT/data/cirr-shifted" --seed 0 --groups 200 --train-groups 50 --size 128 --quiet
for world in default shifted; do
  data="$ROOT/data/cirr"; [ "$world" = shifted ] && data="$ROOT/data/cirr-shifted"
  $PY -m cir.cli eval cirr --root "$data" --split val --backbone cir:demo --strategy image,text,sum,arithmetic,pic2word,combiner \
    --quiet --out "$ROOT/results/$world-others.json"
done
for v in $VARIANTS; do
  p=${v%%:*}; s=${v##*:}; n="$p-$s"
  start=$(date +%s)
  $PY -m cir.cli train qformer --seed 0 --pooling "$p" --sampler "$s" --out "$ROOT/models/qformer-$n" 2>&1 | tee "$ROOT/logs/$n.log"
  echo "wall seconds: $(( $(date +%s) - start ))" >> "$ROOT/logs/$n.log"
  for world in default shifted; do
    data="$ROOT/data/cirr"; [ "$world" = shifted ] && data="$ROOT/data/cirr-shifted"
    $PY -m cir.cli eval cirr --root "$data" --split val --backbone cir:demo --strategy qformer \
      --composer "$ROOT/models/qformer-$n" --quiet --out "$ROOT/results/$world-qformer-$n.json"
  done
done
PYTHONPATH=. $PY benchmarks/bench_qformer.py --images "$ROOT/data/cirr/dev" --limit 200 --queries 40
PYTHONPATH=. $PY benchmarks/qformer_attention.py --png docs/images/qformer-attention.png
