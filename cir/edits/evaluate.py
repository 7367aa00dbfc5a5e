"""Validation sets for the edit tagger and its span F1 on them, per edit kind and for unseen objects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cir.edits.align import spans_from_labels, split_words
from cir.edits.generate import NoiseConfig, Sentence, SentenceGenerator
from cir.edits.metrics import span_f1_by_group
from cir.edits.templates import KINDS, all_templates, split_patterns
from cir.edits.vocabulary import split_objects


@dataclass(frozen=True)
class ValidationSet:
    name: str  # "unseen", "seen-objects" or "audit" (see validation_sets)
    sentences: tuple[Sentence, ...]


def validation_sets(count: int = 2000, seed: int = 0, audit: bool = True) -> list[ValidationSet]:
    """Fixed held-out sentences, balanced over kinds. ``unseen`` (first) is the one models are selected on: its
    templates and its objects are both absent from training. ``seen-objects`` is a diagnostic: held-out templates
    filled with training objects. ``audit`` fills the audit templates (:mod:`cir.edits.audit`, never used to
    train or to select) with validation objects; training passes ``audit=False`` and never builds it."""
    templates = split_patterns(all_templates(), seed=seed)[1]
    objects = split_objects(seed=seed)
    plans = [("unseen", templates, objects.val, 1), ("seen-objects", templates, objects.train, 2)]
    if audit:
        from cir.edits.audit import audit_templates

        plans.append(("audit", audit_templates(), objects.val, 3))
    out = []
    for name, pool, names, salt in plans:
        gen = SentenceGenerator(list(pool), list(names), NoiseConfig())
        rng = np.random.default_rng([seed, 7, salt])
        kinds = [k for k in KINDS if any(t.kind == k for t in pool)]  # the audit has no foreign patterns
        per_kind = max(1, count // len(KINDS))
        out.append(ValidationSet(name, tuple(gen.sample(rng, kind) for kind in kinds for _ in range(per_kind))))
    return out


def gold_spans(sentence: Sentence) -> set[tuple[int, int, str]]:
    return {(s.start, s.end, s.type) for s in spans_from_labels(sentence.labels())}


def score_predictions(sentences, predicted_labels) -> dict[str, dict[str, float]]:
    """Span F1 per kind and overall, plus over sentences holding a multi-word object."""
    gold = [gold_spans(s) for s in sentences]
    pred = [{(s.start, s.end, s.type) for s in spans_from_labels(lab)} for lab in predicted_labels]
    groups = [s.kind for s in sentences]
    scores = span_f1_by_group(gold, pred, groups)
    multi = [i for i, s in enumerate(sentences) if any(" " in o.name for o in s.spans)]
    if multi:
        scores["multi-word objects"] = span_f1_by_group([gold[i] for i in multi], [pred[i] for i in multi], ["x"] * len(multi))["all"]
    with_and = [i for i, s in enumerate(sentences) if any(" and " in o.name for o in s.spans)]
    if with_and:
        scores["objects with 'and'"] = span_f1_by_group([gold[i] for i in with_and], [pred[i] for i in with_and], ["x"] * len(with_and))["all"]
    return scores


def evaluate_model(model, tokenizer, sentences, batch_size: int = 128) -> dict[str, dict[str, float]]:
    from cir.edits.tagger import predict_labels

    was_training = model.training
    model.eval()
    labels = []
    for start in range(0, len(sentences), batch_size):
        chunk = sentences[start : start + batch_size]
        labels.extend(predict_labels(model, tokenizer, [[w.text for w in split_words(s.text)] for s in chunk]))
    model.train(was_training)
    return score_predictions(sentences, labels)


def format_scores(name: str, scores: dict[str, dict[str, float]]) -> str:
    lines = [f"{name}: span F1 {100 * scores['all']['f1']:.2f} (P {100 * scores['all']['precision']:.2f}, "
             f"R {100 * scores['all']['recall']:.2f}) over {scores['all']['sentences']} sentences"]
    for group, s in scores.items():
        if group != "all" and s["tp"] + s["fn"] == 0:  # nothing to find: F1 is 1 or 0, the invented spans tell more
            lines.append(f"  {group:<20} no spans to find; {s['fp']} invented  exact {100 * s['exact']:6.2f}  "
                         f"({s['sentences']} sentences)")
        elif group != "all":
            lines.append(f"  {group:<20} F1 {100 * s['f1']:6.2f}  exact {100 * s['exact']:6.2f}  "
                         f"(tp {s['tp']}, fp {s['fp']}, fn {s['fn']}, {s['sentences']} sentences)")
    return "\n".join(lines)


def world_agreement(parser, splits=("val", "test")) -> dict[str, float]:
    """Share of the offline world's triplet texts whose parsed edit equals the true added/removed objects."""
    from cir.scenes.world import WorldConfig, build_world

    world = build_world(WorldConfig(groups={s: {"train": 400, "val": 100, "test": 100}[s] for s in splits}))
    triplets = [t for s in splits for t in world.splits[s].triplets]
    edits = parser.parse_many([t.text for t in triplets])
    right = sum(sorted(e.add) == sorted(t.added) and sorted(e.remove) == sorted(t.removed) for e, t in zip(edits, triplets))
    return {"exact": right / len(triplets), "right": right, "total": len(triplets)}
