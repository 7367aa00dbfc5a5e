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
loading it for another backbone is refused. ``cir:demo`` ships one (``reranker-rewrite/captioner.safetensors``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cir.rerankers.descriptions import SceneCaption

KIND = "captioner"
FILE_NAME = "captioner.safetensors"  # in a run folder and in reranker-rewrite/ beside a cir: checkpoint
PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")


@dataclass
class CaptionerConfig:
    token_dim: int = 256  # width of the backbone's image tokens (set from the backbone at training)
    n_image_tokens: int = 16  # image tokens per picture (set from the backbone at training)
    embed_dim: int = 0  # > 0: the picture's joint embedding (this wide) joins the tokens as one more memory token
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
        self.memory_pos = nn.Parameter(torch.zeros(cfg.n_image_tokens + (1 if cfg.embed_dim else 0), cfg.width))
        self.embedding_proj = nn.Linear(cfg.embed_dim, cfg.width) if cfg.embed_dim else None
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
    def memory(self, image_tokens: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's memory: the projected image tokens (and the embedding's token when the config has one)."""
        if image_tokens.shape[1:] != (self.cfg.n_image_tokens, self.cfg.token_dim):
            raise ValueError(f"image tokens of shape {tuple(image_tokens.shape[1:])}; this captioner was trained on "
                             f"({self.cfg.n_image_tokens}, {self.cfg.token_dim})")
        parts = [self.memory_proj(self.memory_norm(image_tokens))]
        if self.embedding_proj is not None:
            if embedding is None or embedding.shape[1:] != (self.cfg.embed_dim,):
                raise ValueError(f"this captioner also reads the picture's {self.cfg.embed_dim}-dimensional embedding")
            parts.append(self.embedding_proj(embedding)[:, None])
        return torch.cat(parts, dim=1) + self.memory_pos

    def forward(self, image_tokens: torch.Tensor, inputs: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: ``inputs`` (N, L) token ids -> (N, L, vocab) logits of the next token at each place."""
        memory = self.memory(image_tokens, embedding)
        length = inputs.shape[1]
        x = self.embed(inputs) + self.pos[:length]
        causal = _causal(length, inputs.device)
        pad = inputs == PAD
        h = self.decoder(x, memory, tgt_mask=causal, tgt_key_padding_mask=pad, tgt_is_causal=True)
        return self.head(self.norm(h))

    def loss(self, image_tokens: torch.Tensor, captions: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy of each next token; ``captions`` (N, max_length) padded with PAD."""
        logits = self.forward(image_tokens, captions[:, :-1], embedding)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), captions[:, 1:].reshape(-1), ignore_index=PAD)

    @torch.inference_mode()
    def caption_pixels(self, backbone, pixels: torch.Tensor) -> list[SceneCaption]:
        """Captions of a preprocessed batch, through ``backbone`` (the one the captioner was trained on)."""
        pixels = pixels.to(backbone.device)
        embedding = torch.from_numpy(backbone.encode_pixels(pixels)).to(backbone.device) if self.cfg.embed_dim else None
        return self.generate(backbone.image_tokens(pixels), embedding)

    @torch.inference_mode()
    def generate(self, image_tokens: torch.Tensor, embedding: torch.Tensor | None = None) -> list[SceneCaption]:
        """Grammar-constrained greedy decoding, a batch at a time."""
        n, dev = image_tokens.shape[0], image_tokens.device
        memory = self.memory(image_tokens, embedding)
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
