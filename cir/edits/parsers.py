"""Choosing an edit parser by name: the learned tagger, the rules, or "auto" (the tagger when a checkpoint exists)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from cir.edits.base import EditParser
from cir.errors import ConfigError, WeightsUnavailable

PARSER_NAMES = ("auto", "tagger", "rules")


def rule_parser() -> EditParser:
    from cir.edits.rules import RuleParser
    from cir.scenes.objects import load_objects

    return RuleParser([o.name for o in load_objects()])


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> EditParser:  # mtime keys the cache: a retrained checkpoint is reloaded
    from cir.edits.tagger import load_tagger

    return load_tagger(Path(path))


def tagger_parser(checkpoint: Path | None = None) -> EditParser:
    """The tagger from ``checkpoint`` or the default location; loaded once per process and checkpoint."""
    from cir.edits.tagger import CONFIG_FILE, find_checkpoint

    path = Path(checkpoint) if checkpoint else find_checkpoint()
    if path is None:
        raise WeightsUnavailable("no trained edit tagger found (neither shipped with cir nor in the cache); "
                                 "train one with: cir train edits, or use --parser rules")
    config = path / CONFIG_FILE
    return _load(str(path.resolve()), config.stat().st_mtime_ns if config.exists() else 0)


def get_parser(name: str = "auto", checkpoint: Path | None = None) -> EditParser:
    """``auto``: the tagger when a checkpoint is given or found (a checkpoint that fails to load is an error), else
    the rules. ``tagger``: the tagger or an error. ``rules``: the rule-based parser over the scene objects."""
    from cir.edits.tagger import find_checkpoint

    if name == "rules":
        return rule_parser()
    if name == "tagger":
        return tagger_parser(checkpoint)
    if name == "auto":
        if checkpoint or find_checkpoint() is not None:
            return tagger_parser(checkpoint)
        return rule_parser()
    raise ConfigError(f"unknown edit parser {name!r}; choose one of {', '.join(PARSER_NAMES)}")


def parse(text: str, parser: str = "auto"):
    """``cir.edits.parse("take out the jacket and add a laptop")`` -> Edit(add=("laptop",), remove=("jacket",))."""
    return get_parser(parser).parse(text)
