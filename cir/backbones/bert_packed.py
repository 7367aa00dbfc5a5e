"""Inference-only forward pass of a BERT encoder over packed weights (the ``cir:`` text tower at query time).

Why not transformers' own forward: for one short query text (about ten tokens) on one core, ``BertModel``
spends about a third of its 10 ms outside the matrix products (module hooks, output-capturing and deprecation
wrappers, mask construction), and its separate query, key and value projections are three skinny products
where one will do. This forward reads the same weights (query, key and value concatenated into one product),
runs the same operations in the same order, and matches ``BertModel`` to 1e-5 in fp32 (test:
tests/test_text_precision.py); in bfloat16 one text takes 5 ms instead of 10 here. ONNX Runtime would do the
same with an export step and a new dependency; this is 70 lines over torch's own kernels.

It covers what cir's text towers are: ``BertModel`` with absolute position embeddings, exact GELU, no
cross-attention (MiniLM-L6 and the tiny test towers). :func:`unpackable` says why another model is not.
Gradients never run here: training goes through transformers' module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cir.backbones.text_tower import SentenceTower


def unpackable(bert) -> str | None:
    """Why this forward cannot run ``bert``, or None when it can."""
    cfg = getattr(bert, "config", None)
    if type(bert).__name__ != "BertModel" or cfg is None:
        return f"the text tower is a {type(bert).__name__}, not a BertModel"
    if getattr(cfg, "position_embedding_type", "absolute") != "absolute":
        return f"its position embeddings are {cfg.position_embedding_type!r}, not absolute"
    if cfg.hidden_act != "gelu":
        return f"its activation is {cfg.hidden_act!r}, not gelu"
    if getattr(cfg, "is_decoder", False) or getattr(cfg, "add_cross_attention", False):
        return "it is a decoder"
    return None


class PackedBert:
    """A ``BertModel``'s weights packed for inference in ``dtype``: :meth:`run` gives float32 last hidden states."""

    def __init__(self, bert, dtype: torch.dtype) -> None:
        why = unpackable(bert)
        if why is not None:
            raise ValueError(f"cannot pack this text tower: {why}")
        cfg = bert.config
        self.dtype, self.heads, self.eps = dtype, int(cfg.num_attention_heads), float(cfg.layer_norm_eps)

        def cast(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(dtype).contiguous()

        e = bert.embeddings
        self.words = cast(e.word_embeddings.weight)
        self.positions = cast(e.position_embeddings.weight)
        self.type0 = cast(e.token_type_embeddings.weight[0])
        self.embed_norm = (cast(e.LayerNorm.weight), cast(e.LayerNorm.bias))
        self.layers = []
        for layer in bert.encoder.layer:
            att, out = layer.attention.self, layer.attention.output
            self.layers.append((
                cast(torch.cat([att.query.weight, att.key.weight, att.value.weight])),
                cast(torch.cat([att.query.bias, att.key.bias, att.value.bias])),
                cast(out.dense.weight), cast(out.dense.bias), cast(out.LayerNorm.weight), cast(out.LayerNorm.bias),
                cast(layer.intermediate.dense.weight), cast(layer.intermediate.dense.bias),
                cast(layer.output.dense.weight), cast(layer.output.dense.bias),
                cast(layer.output.LayerNorm.weight), cast(layer.output.LayerNorm.bias),
            ))

    def run(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None,
            attention_mask: torch.Tensor) -> torch.Tensor:
        """(N, L, hidden) float32 last hidden states of token ids or of their word embeddings (one of the two)."""
        x = self.words[input_ids] if inputs_embeds is None else inputs_embeds.to(self.dtype)
        n, length, d = x.shape
        x = F.layer_norm(x + self.positions[:length] + self.type0, (d,), *self.embed_norm, self.eps)
        heads, width = self.heads, d // self.heads
        # one text has no padding: no mask at all (the attention kernel's fastest path)
        mask = None if bool(attention_mask.all()) else (attention_mask[:, None, None, :] > 0)
        for qkv_w, qkv_b, o_w, o_b, n1_w, n1_b, i_w, i_b, f_w, f_b, n2_w, n2_b in self.layers:
            q, k, v = F.linear(x, qkv_w, qkv_b).view(n, length, 3, heads, width).permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(n, length, d)
            x = F.layer_norm(F.linear(att, o_w, o_b) + x, (d,), n1_w, n1_b, self.eps)
            x = F.layer_norm(F.linear(F.gelu(F.linear(x, i_w, i_b)), f_w, f_b) + x, (d,), n2_w, n2_b, self.eps)
        return x.float()


class PackedCache:
    """One :class:`PackedBert` of a live module, packed again when the module's device or dtype asked for changes or
    any of its tensors changed in place (a version counter moved: a training step, a ``load_state_dict``)."""

    def __init__(self) -> None:
        self._module = None
        self._tensors: list[torch.Tensor] = []
        self._key: tuple | None = None
        self._packed: PackedBert | None = None

    def get(self, bert, dtype: torch.dtype) -> PackedBert:
        if self._module is not bert:
            self._module, self._tensors, self._key = bert, [*bert.parameters(), *bert.buffers()], None
        key = (dtype, str(self._tensors[0].device) if self._tensors else "", tuple(t._version for t in self._tensors))
        if self._packed is None or key != self._key:
            self._packed, self._key = PackedBert(bert, dtype), key
        return self._packed


class PackedTower(SentenceTower):
    """The same tokenizer, pooling and outputs as the :class:`SentenceTower` it packs; float32 outputs."""

    def __init__(self, tower: SentenceTower, dtype: torch.dtype, packed: PackedBert | None = None) -> None:
        super().__init__(tower.bert, tower.tokenizer, tower.max_length)
        self.packed = packed if packed is not None else PackedBert(tower.bert, dtype)
        self.dtype = self.packed.dtype

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.packed.words[input_ids]

    def run(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None,
            attention_mask: torch.Tensor) -> torch.Tensor:
        return self.packed.run(input_ids, inputs_embeds, attention_mask)
