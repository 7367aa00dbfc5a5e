"""Tiny random-init hf: models for the re-ranker tests, built from configs in code (nothing is downloaded): BLIP ITM,
BLIP captioning and a GPT-2 instruction model, each with the MiniLM package's BERT tokenizer."""

from __future__ import annotations

from pathlib import Path

import torch

BLIP_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=64,
                 encoder_hidden_size=32, bos_token_id=101, eos_token_id=102, pad_token_id=0, sep_token_id=102)
BLIP_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)


def _tokenizer():
    from transformers import AutoTokenizer

    from cir.backbones.text_tower import minilm_dir

    return AutoTokenizer.from_pretrained(minilm_dir())


def _blip(directory: Path, cls_name: str, seed: int) -> Path:
    import transformers
    from transformers import BlipConfig, BlipImageProcessor, BlipProcessor

    tok = _tokenizer()
    cfg = BlipConfig(text_config={**BLIP_TEXT, "vocab_size": tok.vocab_size}, vision_config=BLIP_VISION, projection_dim=16,
                     image_text_hidden_size=16)
    torch.manual_seed(seed)
    getattr(transformers, cls_name)(cfg).save_pretrained(directory)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok).save_pretrained(directory)
    return directory


def make_tiny_blip_itm(directory: Path, seed: int = 0) -> Path:
    return _blip(directory, "BlipForImageTextRetrieval", seed)


def make_tiny_blip_captioner(directory: Path, seed: int = 0) -> Path:
    return _blip(directory, "BlipForConditionalGeneration", seed)


def make_tiny_causal_lm(directory: Path, seed: int = 0) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = _tokenizer()
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=tok.vocab_size, n_positions=256, n_embd=32, n_layer=1, n_head=2,
                     bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory
