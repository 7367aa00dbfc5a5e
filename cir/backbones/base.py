"""The one interface every backbone implements.

A backbone embeds images and texts into one space (L2-normalised float32 rows) and can encode a text in which
a placeholder word is replaced by a given vector in the text tower's input-embedding space (Pic2Word).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Sequence, TypeVar

import numpy as np
import torch
from PIL import Image

from cir.backbones.placeholder import PLACEHOLDER  # noqa: F401 - re-exported
from cir.backbones.threads import text_threads, torch_threads

T = TypeVar("T")


class Backbone(ABC):
    """Dual encoder behind one interface. Subclasses set ``spec``, ``dim`` and ``token_dim``."""

    spec: str  # the model spec this backbone was loaded from (recorded in stores and reports)
    dim: int  # joint embedding dimension
    token_dim: int  # dimension of the text tower's input token embeddings
    image_size: int  # side of the square model input in pixels
    image_token_dim: int  # width of one image token (see :meth:`image_tokens`)

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    # --- preprocessing ---------------------------------------------------------------------------------------
    @abstractmethod
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """A decoded PIL image -> a CHW float tensor ready for :meth:`encode_pixels`."""

    # --- encoders ----------------------------------------------------------------------------------------------
    @abstractmethod
    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unnormalised image features for a batch of preprocessed tensors (N, C, H, W) on ``self.device``."""

    @abstractmethod
    def _image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """The image tower's per-location tokens (N, T, image_token_dim) for a batch on ``self.device``."""

    @abstractmethod
    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """Unnormalised text features."""

    @abstractmethod
    def _text_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The text tower's per-token outputs (N, L, token_dim) and which of them are real tokens (N, L) bool."""

    @abstractmethod
    def _text_features_injected(self, texts: Sequence[str], tokens: torch.Tensor, placeholder: str) -> torch.Tensor:
        """Unnormalised text features, the ``placeholder`` word's input embedding replaced by ``tokens[i]``."""

    def to(self, device: str | torch.device) -> "Backbone":
        self.device = torch.device(device)
        for module in self.modules():
            module.to(self.device)
        return self

    @abstractmethod
    def modules(self) -> list[torch.nn.Module]:
        """The torch modules that make up the backbone (for ``to``, ``eval`` and parameter access)."""

    def eval(self) -> "Backbone":
        for module in self.modules():
            module.eval()
        return self

    @torch.inference_mode()
    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Preprocessed batch (N, C, H, W) -> (N, dim) float32, unit rows."""
        feats = self._image_features(pixels.to(self.device))
        return _unit_rows(feats)

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        """PIL images -> (N, dim) float32, unit rows."""
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        for start in range(0, len(images), batch_size):
            batch = torch.stack([self.preprocess(im) for im in images[start : start + batch_size]])
            out.append(self.encode_pixels(batch))
        return np.concatenate(out)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Texts -> (N, dim) float32, unit rows. A query's few texts run on one torch thread (cir/backbones/threads.py)."""
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        with torch_threads(text_threads(len(texts), torch.device(self.device).type)):
            for start in range(0, len(texts), batch_size):
                out.append(_unit_rows(self._text_features(list(texts[start : start + batch_size]))))
        return np.concatenate(out)

    @torch.inference_mode()
    def encode_texts_with_token(
        self, texts: Sequence[str], tokens: torch.Tensor | np.ndarray, placeholder: str = PLACEHOLDER
    ) -> np.ndarray:
        """Encode ``texts`` with the placeholder word's embedding replaced by the rows of ``tokens``.

        ``tokens`` is (N, token_dim) or (token_dim,) for one vector shared by all texts. Every text must contain
        the placeholder as a separate word exactly once.
        """
        return _unit_rows(self.text_features_with_token(texts, tokens, placeholder))

    # --- differentiable forms (training: gradients flow to the inputs and to any parameter left trainable) -----
    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Preprocessed batch -> (N, dim) unit rows as a tensor on ``self.device``, with autograd."""
        return torch.nn.functional.normalize(self._image_features(pixels.to(self.device)).float(), dim=-1)

    def image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Preprocessed batch (N, C, H, W) -> (N, T, image_token_dim) float tensor, with autograd.

        The tokens the image tower computes before it pools them into one vector: the cells of the last feature
        map for ``cir:`` (T = h * w, row-major), the patch tokens of an OpenCLIP ViT (after its final norm, class
        token excluded), transformers' ``vision_model(...).last_hidden_state`` for ``hf:`` (CLIP keeps its class
        token first; SigLIP has none). Cross-attention modules (the ``qformer`` strategy, the ``verifier``
        re-ranker) read these; they are not normalised and not in the joint space.
        """
        tokens = self._image_tokens(pixels.to(self.device)).float()
        if tokens.ndim != 3 or tokens.shape[0] != pixels.shape[0] or tokens.shape[2] != self.image_token_dim:
            raise RuntimeError(f"{self.spec}: image tokens have shape {tuple(tokens.shape)}, expected "
                               f"({pixels.shape[0]}, T, {self.image_token_dim})")
        return tokens

    def text_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> ((N, L, token_dim) float tensor, (N, L) bool mask of the real tokens), with autograd.

        The text tower's last hidden states before it pools them into one vector (``cir:``: the sentence encoder's
        tokens, mean-pooled for the sentence; ``openclip:``: the text transformer after ``ln_final``; ``hf:``:
        ``text_model(...).last_hidden_state``). Padding positions are False in the mask and must be ignored: the
        ``qformer`` strategy's text tokens. Not normalised and not in the joint space.
        """
        tokens, mask = self._text_tokens(list(texts))
        tokens = tokens.float()
        if tokens.ndim != 3 or tokens.shape[0] != len(texts) or tokens.shape[2] != self.token_dim or mask.shape != tokens.shape[:2]:
            raise RuntimeError(f"{self.spec}: text tokens have shape {tuple(tokens.shape)} (mask {tuple(mask.shape)}), "
                               f"expected ({len(texts)}, L, {self.token_dim}) and (N, L)")
        return tokens, mask.bool()

    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> (N, dim) unit rows as a tensor, with autograd."""
        return torch.nn.functional.normalize(self._text_features(list(texts)).float(), dim=-1)

    def text_features_with_token(
        self, texts: Sequence[str], tokens: torch.Tensor | np.ndarray, placeholder: str = PLACEHOLDER
    ) -> torch.Tensor:
        """:meth:`encode_texts_with_token` as a tensor with autograd: gradients reach ``tokens`` (Pic2Word)."""
        tokens = torch.as_tensor(np.asarray(tokens, dtype=np.float32) if isinstance(tokens, np.ndarray) else tokens)
        if tokens.ndim == 1:
            tokens = tokens.unsqueeze(0).expand(len(texts), -1)
        if tokens.shape != (len(texts), self.token_dim):
            raise ValueError(f"tokens must be ({len(texts)}, {self.token_dim}), got {tuple(tokens.shape)}")
        for text in texts:
            if text.split().count(placeholder) != 1:
                raise ValueError(f"text must contain the placeholder {placeholder!r} exactly once as a word: {text!r}")
        feats = self._text_features_injected(list(texts), tokens.to(self.device, torch.float32), placeholder)
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    def describe(self) -> dict:
        """What a store or a report records about this backbone, with the fingerprint of its weights (a store or
        an embedding cache built with other weights under the same spec is told apart by it)."""
        return {"spec": self.spec, "dim": self.dim, "image_size": self.image_size, "image_token_dim": self.image_token_dim,
                "weights": self.weights_fingerprint()}

    def runtime(self) -> dict:
        """How this process runs the backbone (not recorded with stores or caches: it does not change a stored
        vector): the device, and for ``cir:`` checkpoints the text tower's inference precision."""
        return {"device": str(self.device)}

    def weights_fingerprint(self) -> str:
        """``sha256:<hex>`` of the weights. Here: of every tensor's name, shape, dtype and bytes, computed again
        only after a tensor changed in place (an optimiser step bumps its version counter); a family whose weights
        are one file hashes the file instead (:class:`CirBackbone`)."""
        import hashlib

        def digest() -> str:
            h = hashlib.sha256()
            for name, tensor in self._live_tensors():
                t = tensor.detach().to("cpu").contiguous()
                h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
            return "sha256:" + h.hexdigest()[:32]

        return self.derived("weights_fingerprint", digest)

    def derived(self, key: str, make: Callable[[], T]) -> T:
        """``make()``, a value computed from this backbone's weights (its fingerprint, the probe embeddings that
        composer files are checked against), kept under ``key`` until a tensor is replaced or changed in place
        (an optimiser step bumps its version counter): computed once per backbone, not once per use."""
        versions = tuple((id(t), t._version) for _, t in self._live_tensors())
        memo = self.__dict__.setdefault("_derived_from_weights", {})
        held = memo.get(key)
        if held is None or held[0] != versions:
            held = memo[key] = (versions, make())
        return held[1]

    def _live_tensors(self) -> list[tuple[str, torch.Tensor]]:
        return [(name, t) for module in self.modules() for name, t in [*module.named_parameters(), *module.named_buffers()]]


def _unit_rows(feats: torch.Tensor) -> np.ndarray:
    feats = torch.nn.functional.normalize(feats.float(), dim=-1)
    return feats.cpu().numpy().astype(np.float32, copy=False)


def placeholder_positions(input_ids: torch.Tensor, placeholder_ids: Sequence[int]) -> torch.Tensor:
    """Index (row, col) of the one placeholder token per row; a clear error when a row has none or several."""
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    for pid in placeholder_ids:
        mask |= input_ids == pid
    counts = mask.sum(dim=1)
    if not torch.all(counts == 1):
        bad = int(torch.nonzero(counts != 1)[0, 0])
        raise ValueError(f"text {bad} tokenises with {int(counts[bad])} placeholder tokens; exactly one is needed")
    return mask


class inject_tokens:
    """Context manager: while active, ``embedding`` (an nn.Embedding) returns ``tokens[i]`` at row i's positions
    where ``mask`` is true. Works for any text tower that looks up its input ids through one embedding module."""

    def __init__(self, embedding: torch.nn.Module, mask: torch.Tensor, tokens: torch.Tensor) -> None:
        self.embedding, self.mask, self.tokens = embedding, mask, tokens
        self.handle = None

    def _hook(self, module, args, output):
        if output.shape[:2] != self.mask.shape:
            raise RuntimeError("token injection: embedding output does not match the tokenised batch")
        fill = self.tokens.to(output.dtype).unsqueeze(1).expand_as(output)
        return torch.where(self.mask.unsqueeze(-1), fill, output)

    def __enter__(self):
        self.handle = self.embedding.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()
        return False
