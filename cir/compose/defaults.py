"""Which strategy a query uses when the caller names none.

A text alone is searched with ``text`` and a reference alone with ``image``. A composed query (reference and text)
uses the best *measured* strategy for the store's backbone: the one recorded with the backbone's trained composers
in ``recommended_strategy.json`` (beside a ``cir:`` checkpoint's ``composer-<kind>.safetensors``, or beside the
composers promoted for the backbone), with its measured R@1 and where that number comes from. A backbone that
records no measurement falls back to :data:`~cir.compose.registry.DEFAULT_STRATEGY` (``sum``), and says so.

    choose_strategy("cir:demo", has_reference=True, has_text=True)
    # DefaultStrategy(name='arithmetic', recall_at_1=73.8, reason='best measured R@1 for cir:demo: ...')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cir.compose.registry import DEFAULT_STRATEGY, strategy_spec
from cir.errors import ConfigError, QueryError, WeightsUnavailable

RECOMMENDATION_FILE = "recommended_strategy.json"


@dataclass(frozen=True)
class DefaultStrategy:
    name: str  # the strategy used when the caller names none
    recall_at_1: float | None  # its measured R@1 in % (composed queries with a recorded measurement), else None
    reason: str  # why this one, in words (where the number comes from)
    source: str | None = None  # the recommendation file it was read from, if any

    def to_json(self) -> dict:
        return {"name": self.name, "recall_at_1": self.recall_at_1, "reason": self.reason, "source": self.source}


def recommendation_paths(spec: str) -> list[Path]:
    """Where a recommendation for backbone ``spec`` may be recorded, first found wins: beside the composers promoted
    for it, then beside a ``cir:`` checkpoint's own composers."""
    from cir.backbones import checkpoint_dir, parse_model_spec
    from cir.compose.composer_file import promoted_composer_path
    from cir.errors import SpecError

    out = [promoted_composer_path(spec, "any").parent / RECOMMENDATION_FILE]
    try:
        parsed = parse_model_spec(spec)
    except SpecError:  # a backbone built in code (tests): only the promoted place
        return out
    if parsed.kind == "cir":
        try:
            directory = checkpoint_dir(parsed.name)
        except WeightsUnavailable:
            return out
        out.append(directory / RECOMMENDATION_FILE)
    return out


def recommended_strategy(spec: str) -> DefaultStrategy:
    """The best measured composed strategy for backbone ``spec`` (or ``sum`` when none is recorded)."""
    for path in recommendation_paths(spec):
        if path.is_file():
            return _read(path, spec)
    return DefaultStrategy(DEFAULT_STRATEGY, None, f"no measured comparison of strategies is recorded for {spec} "
                           f"(no {RECOMMENDATION_FILE} with its composers), so composed queries use {DEFAULT_STRATEGY}")


def _read(path: Path, spec: str) -> DefaultStrategy:
    try:
        raw = json.loads(path.read_text())
        name, r1, source = raw["recommended_strategy"], raw.get("recall_at_1"), raw.get("source", "")
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a strategy recommendation ({exc}); it needs "
                          '{"recommended_strategy": NAME, "recall_at_1": R1, "source": WHERE}; fix or remove it') from None
    try:
        strategy_spec(name)
    except QueryError as exc:
        raise ConfigError(f"{path} recommends {exc}") from None
    measured = raw.get("measured_on", "")
    reason = (f"best measured R@1 for {spec}: {name} {r1:.1f}" if r1 is not None else f"recommended for {spec}: {name}")
    reason += (f" on {measured}" if measured else "") + (f" ({source})" if source else "")
    return DefaultStrategy(name, float(r1) if r1 is not None else None, reason, str(path))


def write_recommendation(directory: str | Path, table: dict[str, float], measured_on: str, source: str) -> Path:
    """Record the best of ``table`` (strategy -> R@1 in %) as the default for the backbone whose composers live in
    ``directory`` (the table or benchmark that measured them calls this)."""
    if not table:
        raise ConfigError("no measured strategies to recommend from")
    for name in table:
        strategy_spec(name)
    best = max(table, key=lambda n: table[n])
    path = Path(directory) / RECOMMENDATION_FILE
    path.write_text(json.dumps({"recommended_strategy": best, "recall_at_1": table[best], "metric": "R@1 (%)",
                                "measured_on": measured_on, "source": source, "table": table}, indent=2) + "\n")
    return path


def choose_strategy(spec: str, has_reference: bool, has_text: bool) -> DefaultStrategy:
    """The strategy for a query that names none: ``text`` for a text alone, ``image`` for a reference alone, else
    :func:`recommended_strategy`."""
    if has_text and not has_reference:
        return DefaultStrategy("text", None, "a text without a reference image is searched by the text alone")
    if has_reference and not has_text:
        return DefaultStrategy("image", None, "a reference image without a text is searched by the image alone")
    return recommended_strategy(spec)
