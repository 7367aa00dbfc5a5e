"""Latency of one edit parse on the CPU: the learned tagger beside the rule-based parser, on the same texts.

    python benchmarks/bench_edits.py                 # prints the Markdown section
    python benchmarks/bench_edits.py --write         # also replaces it in benchmarks/RESULTS.md

Texts: the offline world's val triplet texts and held-out validation sentences (unseen templates and objects), mixed.
Each parse is timed once after warm-up; the table gives p50 / p99 over all of them, for torch's default intra-op
thread count and for one thread (one short text gains little from more threads), plus the share of the tagger's time
spent outside the network (word split, tokenizer, decoding) and batched throughput (``parse_many``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cir, wherever it is run from

from benchmarks._common import display_path, machine_description, percentiles, write_section  # noqa: E402


def texts(n: int) -> list[str]:
    from cir.edits.evaluate import validation_sets
    from cir.scenes.world import WorldConfig, build_world

    world = [t.text for t in build_world(WorldConfig(groups={"val": 100})).splits["val"].triplets]
    generated = [s.text for s in validation_sets(n, seed=0)[0].sentences]
    mixed = [t for pair in zip(world, generated) for t in pair]
    return (mixed * (n // len(mixed) + 1))[:n]


def time_each(parser, items: list[str]) -> list[float]:
    for t in items[:20]:
        parser.parse(t)
    out = []
    for t in items:
        start = time.perf_counter()
        parser.parse(t)
        out.append(time.perf_counter() - start)
    return out


def run(args) -> dict:
    import torch

    from cir.edits.align import encode_words, split_words
    from cir.edits.parsers import get_parser

    items = texts(args.texts)
    tagger = get_parser("tagger", args.checkpoint)
    rules = get_parser("rules")
    default_threads = torch.get_num_threads()
    result = {"default_threads": default_threads, "n": len(items), "checkpoint": display_path(getattr(tagger, "source", ""))}
    result["tagger"] = percentiles(time_each(tagger, items))
    prep = []
    for t in items:
        start = time.perf_counter()
        words = split_words(t)
        if words:
            encode_words(tagger.tokenizer, [[w.text for w in words]], tagger.model.cfg.max_length)
        prep.append(time.perf_counter() - start)
    result["prep"] = percentiles(prep)
    torch.set_num_threads(1)
    result["tagger_1"] = percentiles(time_each(tagger, items))
    torch.set_num_threads(default_threads)
    result["rules"] = percentiles(time_each(rules, items))
    start = time.perf_counter()
    tagger.parse_many(items)
    result["batch_texts_s"] = len(items) / (time.perf_counter() - start)
    result["tokens"] = sum(len(split_words(t)) for t in items) / len(items)
    return result


def markdown(r: dict, machine: str) -> str:
    def row(name, p):
        return f"| {name} | {p['p50']:.2f} | {p['p99']:.2f} | {p['mean']:.2f} |"

    return "\n".join([
        "## Edit parsing latency (one text at a time, CPU)",
        "",
        f"{r['n']} texts (offline-world triplet texts and held-out validation sentences, {r['tokens']:.1f} words on "
        f"average); tagger checkpoint `{r['checkpoint']}`. Machine: {machine}.",
        "",
        "| parser | p50 ms | p99 ms | mean ms |",
        "|---|---|---|---|",
        row(f"tagger, {r['default_threads']} threads (torch default)", r["tagger"]),
        row("tagger, 1 thread", r["tagger_1"]),
        row("of which word split + tokenizer", r["prep"]),
        row("rules", r["rules"]),
        "",
        f"Tagger p50 / rules p50: {r['tagger']['p50'] / r['rules']['p50']:.0f}x. Batched (`parse_many`, 64 texts per "
        f"forward pass): {r['batch_texts_s']:.0f} texts/s.",
        "",
    ])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=None, help="tagger checkpoint (default: shipped or cached)")
    ap.add_argument("--texts", type=int, default=400)
    ap.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    machine = machine_description()
    text = markdown(run(args), machine)
    print(text)
    if args.write:
        write_section("edits-latency", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
