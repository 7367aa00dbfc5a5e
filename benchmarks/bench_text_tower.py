"""One query text through the ``cir:demo`` text tower: transformers' forward against cir's packed forward, fp32
against bf16, one torch thread against two.

    python benchmarks/bench_text_tower.py            # prints the Markdown section
    python benchmarks/bench_text_tower.py --write    # also replaces it in RESULTS.md

Each configuration encodes the same distinct query texts one at a time (``SentenceTower`` forward: tokenizer,
six BERT layers, mean pooling; no projection), in interleaved rounds so that a drift of the machine's speed
falls on every row alike. The cosine column compares each row's sentence vectors with transformers' fp32 ones.
Why the packed forward and bf16 exist: cir/backbones/bert_packed.py and cir/backbones/precision.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cir, wherever it is run from

import numpy as np  # noqa: E402

from benchmarks._common import machine_description, write_section  # noqa: E402

TEXTS = ["add a red cup", "remove the lamp and add a fork", "same but blue", "take out the jacket and add a laptop",
         "a sketch of this", "make it night and put two birds in the sky"]


def main(argv=None) -> int:
    import torch

    from cir.backbones.bert_packed import PackedTower
    from cir.backbones.precision import native_bf16_cpu_flag
    from cir.backbones.text_tower import MINILM, build_text_tower

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=40)
    parser.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    tower = build_text_tower(MINILM).eval()
    towers = {"transformers fp32": tower, "packed fp32": PackedTower(tower, torch.float32),
              "packed bf16": PackedTower(tower, torch.bfloat16)}
    texts = [f"{TEXTS[i % len(TEXTS)]} #{i}" for i in range(args.rounds * args.per_round + 10)]
    with torch.inference_mode():
        reference = torch.nn.functional.normalize(tower(texts[:64]), dim=-1)
        cosine = {name: float((torch.nn.functional.normalize(t(texts[:64]), dim=-1) * reference).sum(-1).min())
                  for name, t in towers.items()}
        times: dict[tuple[str, int], list[float]] = {}
        for r in range(args.rounds):
            for threads in (1, 2):
                torch.set_num_threads(threads)
                for name, t in towers.items():
                    for _ in range(3):
                        t(texts[:1])  # warm at this thread count
                    for i in range(args.per_round):
                        text = [texts[r * args.per_round + i]]
                        start = time.perf_counter()
                        t(text)
                        times.setdefault((name, threads), []).append(time.perf_counter() - start)
    lines = [
        "### One query text through the `cir:demo` text tower (`benchmarks/bench_text_tower.py`)",
        "",
        f"MiniLM-L6 sentence tower, {args.rounds} interleaved rounds of {args.per_round} distinct short query texts "
        f"each per row, one text per call. Machine: {machine_description()}; native bf16 CPU flag: "
        f"{native_bf16_cpu_flag() or 'none'}.",
        "",
        "| forward | p50 ms, 1 thread | p50 ms, 2 threads | p90 ms, 1 thread | min cosine to transformers fp32 (64 texts) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in towers:
        one, two = np.asarray(times[(name, 1)]) * 1e3, np.asarray(times[(name, 2)]) * 1e3
        lines.append(f"| {name} | {np.median(one):.2f} | {np.median(two):.2f} | {np.percentile(one, 90):.2f} | "
                     f"{cosine[name]:.6f} |")
    lines += ["", "A query's few texts run on one thread (cir/backbones/threads.py: on a busy machine a second thread "
                  "waits at every op's barrier); with `text_precision` auto a CPU with native bf16 runs the packed bf16 "
                  "row, any other the packed fp32 row."]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section("bench_text_tower", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
