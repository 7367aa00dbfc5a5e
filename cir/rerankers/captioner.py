"""The scene captioner the ``rewrite`` re-ranker uses with ``cir:`` backbones: a small transformer decoder that
cross-attends to the backbone's image tokens (``Backbone.image_tokens``) and writes the scene's caption.

A caption of the offline world is a style phrase and a list of objects ("a sketch of a cup, a fork and a lamp").
The decoder writes it as tokens of that grammar, one token per style and one per object name (the vocabulary is
the world's 4 styles and 319 objects, saved in the weights file), objects in the order of the vocabulary:

    <bos> sketch cup fork lamp <eos>      ->   "a sketch of a cup, a fork and a lamp" (cir.scenes.captions)

so "which objects did the captioner see" is read from its output exactly, and the edit tagger's adds and removes
apply to that list. Greedy decoding is constrained to the grammar: a style first, then objects in increasing
vocabulary order with no repeats, then the end (at most ``max_objects``).

Trained by ``cir train captioner`` (:mod:`cir.train.captioner`) with teacher forcing on the world's train split,
chosen on held-out train groups. The weights file is a composer-format safetensors (:mod:`cir.compose.composer_file`,
kind ``captioner``): the network, its config and vocabulary, and the probes of the backbone it was trained for, so
loading it for another backbone is refused. ``cir:demo`` ships one (``reranker-captioner.safetensors`` beside it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

KIND = "captioner"
SHIPPED_NAME = "reranker-captioner.safetensors"  # in a cir: checkpoint directory (cir:demo ships one)
PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")


@dataclass
class CaptionerConfig:
    token_dim: int = 256  # width of the backbone's image tokens (set from the backbone at training)
    n_image_tokens: int = 16  # image tokens per picture (set from the backbone at training)
    width: int = 192  # decoder width
    layers: int = 2  # decoder layers (self-attention, cross-attention to the image tokens, feed-forward)
    heads: int = 4  # attention heads
    ff: int = 512  # feed-forward width
    dropout: float = 0.1  # inside the decoder, at training
    max_objects: int = 4  # longest object list decoded
    styles: tuple[str, ...] = ("color", "grayscale", "sketch", "pixel")  # style tokens, in vocabulary order
    objects: tuple[str, ...] = field(default_factory=tuple)  # object-name tokens, in vocabulary order

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.styles) + len(self.objects)

    @property
    def max_length(self) -> int:  # <bos> style objects <eos>
        return 3 + self.max_objects

    def to_dict(self) -> dict:
        return {**asdict(self), "styles": list(self.styles), "objects": list(self.objects)}

    @classmethod
    def from_dict(cls, data: dict) -> "CaptionerConfig":
        return cls(**{**data, "styles": tuple(data["styles"]), "objects": tuple(data["objects"])})


@dataclass(frozen=True)
class SceneCaption:
    """What the captioner read in one picture."""

    style: str  # one of the config's styles
    objects: tuple[str, ...]  # object names, vocabulary order

    def text(self) -> str:
        from cir.scenes.captions import canonical_caption

        return canonical_caption(list(self.objects), self.style) if self.objects else _style_only(self.style)


def _style_only(style: str) -> str:
    from cir.scenes.render import STYLE_PHRASES

    return f"{STYLE_PHRASES[style]} nothing"


def world_config(**overrides) -> CaptionerConfig:
    """A config whose vocabulary is the offline world's styles and objects."""
    from cir.scenes.objects import load_objects
    from cir.scenes.render import STYLES

    return CaptionerConfig(**{"styles": tuple(STYLES), "objects": tuple(o.name for o in load_objects()), **overrides})


class Captioner(nn.Module):
    """Image tokens (N, T, token_dim) -> logits over the caption grammar's tokens."""

    def __init__(self, cfg: CaptionerConfig) -> None:
        super().__init__()
        if not cfg.objects:
            raise ValueError("a captioner needs an object vocabulary (CaptionerConfig.objects)")
        self.cfg = cfg
        self.memory_norm = nn.LayerNorm(cfg.token_dim)
        self.memory_proj = nn.Linear(cfg.token_dim, cfg.width)
        self.memory_pos = nn.Parameter(torch.zeros(cfg.n_image_tokens, cfg.width))
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.pos = nn.Parameter(torch.zeros(cfg.max_length, cfg.width))
        layer = nn.TransformerDecoderLayer(cfg.width, cfg.heads, cfg.ff, cfg.dropout, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, cfg.layers)
        self.norm = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.vocab_size)
        nn.init.normal_(self.memory_pos, std=0.02)
        nn.init.normal_(self.pos, std=0.02)

    # --- vocabulary ----------------------------------------------------------------------------------------------
    @property
    def first_style(self) -> int:
        return len(SPECIALS)

    @property
    def first_object(self) -> int:
        return len(SPECIALS) + len(self.cfg.styles)

    def encode_caption(self, style: str, objects: Sequence[str]) -> list[int]:
        """A caption as token ids: <bos> style objects (vocabulary order) <eos>."""
        try:
            s = self.first_style + self.cfg.styles.index(style)
            objs = sorted(self.first_object + self.cfg.objects.index(o) for o in objects)
        except ValueError as exc:
            raise ValueError(f"caption outside the captioner's vocabulary: {style!r} {list(objects)!r}") from exc
        if len(objs) > self.cfg.max_objects:
            raise ValueError(f"{len(objs)} objects; this captioner writes at most {self.cfg.max_objects}")
        return [BOS, s, *objs, EOS]

    def caption_of(self, ids: Sequence[int]) -> SceneCaption:
        style = self.cfg.styles[ids[1] - self.first_style]
        objs = tuple(self.cfg.objects[i - self.first_object] for i in ids[2:] if i >= self.first_object)
        return SceneCaption(style, objs)

    # --- network -------------------------------------------------------------------------------------------------
    def memory(self, image_tokens: torch.Tensor) -> torch.Tensor:
        if image_tokens.shape[1:] != (self.cfg.n_image_tokens, self.cfg.token_dim):
            raise ValueError(f"image tokens of shape {tuple(image_tokens.shape[1:])}; this captioner was trained on "
                             f"({self.cfg.n_image_tokens}, {self.cfg.token_dim})")
        return self.memory_proj(self.memory_norm(image_tokens)) + self.memory_pos

    def forward(self, image_tokens: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: ``inputs`` (N, L) token ids -> (N, L, vocab) logits of the next token at each place."""
        memory = self.memory(image_tokens)
        length = inputs.shape[1]
        x = self.embed(inputs) + self.pos[:length]
        causal = _causal(length, inputs.device)
        pad = inputs == PAD
        h = self.decoder(x, memory, tgt_mask=causal, tgt_key_padding_mask=pad, tgt_is_causal=True)
        return self.head(self.norm(h))

    def loss(self, image_tokens: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each next token; ``captions`` (N, max_length) padded with PAD."""
        logits = self.forward(image_tokens, captions[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), captions[:, 1:].reshape(-1), ignore_index=PAD)

    @torch.inference_mode()
    def generate(self, image_tokens: torch.Tensor) -> list[SceneCaption]:
        """Grammar-constrained greedy decoding, a batch at a time."""
        n, dev = image_tokens.shape[0], image_tokens.device
        memory = self.memory(image_tokens)
        seq = torch.full((n, 1), BOS, dtype=torch.long, device=dev)
        done = torch.zeros(n, dtype=torch.bool, device=dev)
        vocab = torch.arange(self.cfg.vocab_size, device=dev)
        for step in range(self.cfg.max_length - 1):
            x = self.embed(seq) + self.pos[: seq.shape[1]]
            causal = _causal(seq.shape[1], dev)
            logits = self.head(self.norm(self.decoder(x, memory, tgt_mask=causal, tgt_is_causal=True)[:, -1]))
            allowed = self._allowed(step, seq[:, -1], vocab)
            nxt = logits.masked_fill(~allowed, float("-inf")).argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            done |= nxt == EOS
            if bool(done.all()):
                break
        return [self.caption_of([int(t) for t in row if int(t) != PAD]) for row in seq.cpu()]

    def _allowed(self, step: int, last: torch.Tensor, vocab: torch.Tensor) -> torch.Tensor:
        """(N, vocab) which tokens may follow: a style at step 0; then a later object or the end."""
        n = last.shape[0]
        if step == 0:
            ok = (vocab >= self.first_style) & (vocab < self.first_object)
            return ok.expand(n, -1)
        later = (vocab[None, :] >= self.first_object) & (vocab[None, :] > last[:, None])
        if step > self.cfg.max_objects:  # the list is full: only the end
            later = torch.zeros_like(later)
        end = (vocab == EOS)[None, :].expand(n, -1)
        return later | end


def _causal(length: int, device) -> torch.Tensor:
    """True where a place may not look (the places after it)."""
    return torch.triu(torch.ones((length, length), dtype=torch.bool, device=device), diagonal=1)


def pad_captions(rows: Sequence[Sequence[int]], length: int) -> torch.Tensor:
    out = torch.full((len(rows), length), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


def save_captioner(path: str | Path, net: Captioner, backbone, provenance: dict) -> Path:
    """Write the captioner (float16 tensors, a few MB) with its config and the backbone's probes."""
    from cir.compose.composer_file import ComposerWeights, save_composer

    state = {k: v.detach().cpu().to(torch.float16) for k, v in net.state_dict().items()}
    return save_composer(path, ComposerWeights(KIND, net.cfg.to_dict(), state, backbone.spec, provenance), backbone)


def load_captioner(path: str | Path, backbone) -> Captioner:
    """Read a captioner file and check it was trained for ``backbone`` (a WeightsUnavailable naming the fix if not)."""
    from cir.compose.composer_file import load_composer

    weights = load_composer(path, KIND, backbone)
    net = Captioner(CaptionerConfig.from_dict(weights.config))
    net.load_state_dict({k: v.float() for k, v in weights.state.items()})
    return net.eval()


def default_captioner_path(backbone) -> Path:
    """The captioner shipped beside a ``cir:`` checkpoint (``cir:demo`` ships one); other backbones pass a file or
    use an ``hf:`` captioner."""
    from cir.backbones import demo_checkpoint_dir, parse_model_spec
    from cir.errors import WeightsUnavailable

    head = backbone.spec.partition(":")[0]
    parsed = parse_model_spec(backbone.spec) if head in ("cir", "openclip", "hf") else None
    if parsed is not None and parsed.kind == "cir":
        directory = demo_checkpoint_dir() if parsed.name == "demo" else Path(parsed.name).expanduser()
        if (directory / SHIPPED_NAME).is_file():
            return directory / SHIPPED_NAME
    raise WeightsUnavailable(
        f"the rewrite re-ranker needs a captioner for backbone {backbone.spec} and none ships with it; train one with "
        f"`cir train captioner --backbone {backbone.spec} --out DIR` and pass captioner=DIR/captioner.safetensors, "
        "or use an hf: captioner (captioner=hf:Salesforce/blip-image-captioning-base)"
    )
