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


QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                "<|video_pad|>")
QWEN_WORDS = ("user", "assistant", "yes", "no", "the", "first", "image", "is", "reference.", "does", "second", "show",
              "changed", "as", "follows:", "answer", "or", "no.", "[UNK]")
QWEN_TEMPLATE = ("{% for m in messages %}<|im_start|> {{ m['role'] }} \n{% for c in m['content'] %}{% if c['type'] == 'image' %}"
                 "<|vision_start|> <|image_pad|> <|vision_end|> {% else %}{{ c['text'] }}{% endif %}{% endfor %} <|im_end|> \n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|> assistant \n{% endif %}")


def make_tiny_qwen2_vl(directory: Path, seed: int = 0) -> Path:
    """A Qwen2-VL with one vision and one text layer, a word-level tokenizer holding Qwen's special tokens and a
    chat template of the same shape as Qwen's; 56 x 56 pixels per image (4 visual tokens after the 2 x 2 merge)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor,
                              Qwen2VLProcessor, Qwen2VLVideoProcessor)

    vocab = {t: i for i, t in enumerate(QWEN_SPECIAL + QWEN_WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="<|endoftext|>", eos_token="<|im_end|>",
                                  additional_special_tokens=list(QWEN_SPECIAL[1:]))
    images = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14, merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=images, tokenizer=tok, video_processor=Qwen2VLVideoProcessor(),
                                 chat_template=QWEN_TEMPLATE)
    cfg = Qwen2VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, max_position_embeddings=256, bos_token_id=0, eos_token_id=2,
                         rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}),
        vision_config=dict(depth=1, embed_dim=32, num_heads=2, hidden_size=32, mlp_ratio=2, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2, in_channels=3),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"], bos_token_id=0, eos_token_id=2)
    torch.manual_seed(seed)
    Qwen2VLForConditionalGeneration(cfg).save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
