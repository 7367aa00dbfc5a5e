"""The style reader (`cir.rerankers.style_reader`) against nearest-instruction matching, per sentence set.

Chooses the reader's L2 strength by grouped cross-validation on its own bank (a directional sentence's group is its
verb, so a verb is never in both the fitted and the scored part), then reports, for the chosen reader and for the
nearest-instruction rule it replaces, the accuracy on:
- the bank, by grouped cross-validation (the only numbers used to choose);
- the default world's style instructions;
- the shifted world's style templates (reported, never used to choose).

    python benchmarks/style_reader.py --backbone cir:runs/tower/generalise-styles-b
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cir, wherever it is run from


def _group(text: str, verbs: tuple[str, ...]) -> str:
    return next((v for v in sorted(verbs, key=len, reverse=True) if v in text.split(" the ")[0].split(" its ")[0]), text)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="cir:demo")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--l2", default="1e-4,1e-3,1e-2,1e-1")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from cir.backbones import load_backbone
    from cir.compose.base import unit_rows
    from cir.rerankers import style_reader as sr
    from cir.scenes.captions import STYLE_TEMPLATES
    from cir.scenes.shifted_phrasings import SHIFTED_STYLE_TEMPLATES

    torch.set_num_threads(args.threads)
    backbone = load_backbone(args.backbone)
    bank = sr.style_bank()
    classes = (*STYLE_TEMPLATES, sr.KEEP)
    x = unit_rows(backbone.encode_texts([t for t, _ in bank])).astype(np.float64)
    y = np.array([classes.index(s) for _, s in bank])
    verbs = sr._TAKE_OUT + sr._PUT_BACK
    fold = np.array([zlib.crc32(_group(t, verbs).encode()) % args.folds for t, _ in bank])
    cv = {}
    for l2 in (float(v) for v in args.l2.split(",")):
        hit = 0
        for f in range(args.folds):
            w = sr.fit_softmax(x[fold != f], y[fold != f], len(classes), l2)
            logits = np.hstack([x[fold == f], np.ones(((fold == f).sum(), 1))]) @ w
            hit += int((logits.argmax(axis=1) == y[fold == f]).sum())
        cv[l2] = hit / len(bank)
        print(f"grouped {args.folds}-fold cross-validation on the bank ({len(bank)} sentences), l2 {l2:g}: "
              f"{100 * cv[l2]:.2f}%", flush=True)
    best = max(cv, key=lambda k: (cv[k], -k))
    reader = sr.StyleReader(backbone, l2=best)
    protos = np.stack([backbone.encode_texts(list(STYLE_TEMPLATES[s])).mean(axis=0) for s in STYLE_TEMPLATES])
    protos = protos / np.linalg.norm(protos, axis=1, keepdims=True)

    def nearest(texts):
        return [tuple(STYLE_TEMPLATES)[int(i)] for i in (backbone.encode_texts(list(texts)) @ protos.T).argmax(axis=1)]

    print(f"\nchosen l2 {best:g}\n\n| sentences | n | nearest instruction | style reader |\n|---|---:|---:|---:|")
    for name, templates in (("default world's style instructions", STYLE_TEMPLATES),
                            ("shifted world's style templates", SHIFTED_STYLE_TEMPLATES)):
        texts = [t for s in templates for t in templates[s]]
        truth = [s for s in templates for _ in templates[s]]
        near, read = nearest(texts), reader.read(texts)
        acc = lambda got: 100 * np.mean([g == t for g, t in zip(got, truth)])  # noqa: E731
        print(f"| {name} | {len(texts)} | {acc(near):.2f} | {acc(read):.2f} |")
        for text, t, n, r in zip(texts, truth, near, read):
            if n != t or r != t:
                print(f"|   {text!r} ({t}) | | {n} | {r} |")


if __name__ == "__main__":
    main()
