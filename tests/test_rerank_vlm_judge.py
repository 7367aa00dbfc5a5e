"""The vlm-judge re-ranker with a tiny random-init BLIP ITM model (nothing downloaded): its score is the ITM head's
match probability, computed here by hand as the oracle; and every missing or wrong model is one sentence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cir.errors import SpecError, WeightsUnavailable
from cir.query.rerank import Candidates, Fusion, QueryContext


@pytest.fixture(scope="module")
def blip_itm(tmp_path_factory):
    from tests.rerank_models import make_tiny_blip_itm

    return make_tiny_blip_itm(tmp_path_factory.mktemp("blip-itm") / "model")


@pytest.fixture(scope="module")
def picture_gallery(tiny_backbone, tmp_path_factory):
    from cir.encode.cache import EmbeddingCache
    from cir.query import ArrayGallery

    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        im = Image.new("RGB", (48, 40), tuple(int(c) for c in rng.integers(0, 256, size=3)))
        im.paste(tuple(int(c) for c in rng.integers(0, 256, size=3)), (5 * i, 4, 5 * i + 12, 20))
        paths.append(root / f"p{i}.png")
        im.save(paths[-1])
    vectors, _ = EmbeddingCache(tiny_backbone).embed_files(paths, progress=False)
    return ArrayGallery(vectors, [str(p) for p in paths])


def test_the_score_is_the_itm_heads_match_probability(blip_itm, picture_gallery, tiny_backbone):
    from transformers import AutoProcessor, BlipForImageTextRetrieval

    from cir.query.stages import Ranked, rerank_stage
    from cir.rerankers import build_reranker

    judge = build_reranker("vlm-judge", {"judge": f"hf:{blip_itm}"}, backbone=tiny_backbone)
    assert judge.params() == {"judge": f"hf:{blip_itm}", "family": "blip", "judge_text": "text"}
    vectors = picture_gallery.searcher.vectors(np.arange(6))
    contexts = [QueryContext(vectors[0], "add a red square", vectors[0], 0, picture_gallery),
                QueryContext(vectors[1], "make it blue", vectors[1], 1, picture_gallery)]
    candidates = [Candidates(np.array([2, 3, 4, 5]), np.array([0.4, 0.3, 0.2, 0.1], np.float32)),
                  Candidates(np.array([5, 0, 3]), np.array([0.5, 0.4, 0.3], np.float32))]
    raw = judge.score_many(contexts, candidates)

    model = BlipForImageTextRetrieval.from_pretrained(blip_itm).eval()
    processor = AutoProcessor.from_pretrained(blip_itm)
    for context, cand, got in zip(contexts, candidates, raw):
        for j, item in enumerate(cand.ids):  # oracle: one pair at a time
            enc = processor(images=[Image.open(picture_gallery.path(int(item))).convert("RGB")], text=[context.text],
                            return_tensors="pt")
            with torch.no_grad():
                logits = model(**enc, use_itm_head=True).itm_score
            assert got[j] == pytest.approx(float(torch.softmax(logits, -1)[0, 1]), abs=1e-5)
        assert np.all((got > 0) & (got < 1))
    np.testing.assert_array_equal(judge.calibrate(raw[0]), raw[0])  # already a probability

    first = Ranked(np.array([[2, 3, 4, 5]]), np.array([[0.4, 0.3, 0.2, 0.1]], np.float32))
    ranked = rerank_stage(judge, contexts[:1], first, 4, Fusion("linear", 1.0))
    np.testing.assert_array_equal(ranked.ids[0], candidates[0].ids[np.argsort(-raw[0], kind="stable")])
    assert set(ranked.stage_scores[0]) >= {"first_stage", "rerank", "rerank_calibrated"}


def test_the_judge_can_read_the_rewritten_description(blip_itm, picture_gallery, tiny_backbone, tmp_path):
    from cir.rerankers import build_reranker
    from tests.rerank_models import make_tiny_blip_captioner

    captioner = make_tiny_blip_captioner(tmp_path / "cap")
    judge = build_reranker("vlm-judge", {"judge": f"hf:{blip_itm}", "judge_text": "rewrite", "captioner": f"hf:{captioner}",
                                         "editor": "rules"}, backbone=tiny_backbone)
    vectors = picture_gallery.searcher.vectors(np.arange(6))
    context = QueryContext(vectors[0], "remove the dog", vectors[0], 0, picture_gallery)
    text = judge.rewriter.rewrite_queries([context])[0]
    got = judge.score(context, Candidates(np.array([1, 2]), np.array([0.2, 0.1], np.float32)))
    direct = judge.judge.match([Image.open(picture_gallery.path(i)).convert("RGB") for i in (1, 2)], [text, text])
    np.testing.assert_allclose(got, direct, atol=1e-6)


def test_missing_and_wrong_judges_are_one_sentence(tiny_backbone, tmp_path):
    from transformers import BertConfig, BertModel

    from cir.compose.registry import InvalidParameter
    from cir.rerankers import build_reranker

    with pytest.raises(InvalidParameter, match="needs a model: pass judge=hf:REPO_OR_DIR"):
        build_reranker("vlm-judge", {}, backbone=tiny_backbone)
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        build_reranker("vlm-judge", {"judge": f"hf:{tmp_path}/none"}, backbone=tiny_backbone)
    with pytest.raises(SpecError, match="not an hf: model"):
        build_reranker("vlm-judge", {"judge": "Salesforce/blip-itm-base-coco"}, backbone=tiny_backbone)
    with pytest.raises(InvalidParameter, match="text, rewrite"):
        build_reranker("vlm-judge", {"judge": "hf:x", "judge_text": "caption"}, backbone=tiny_backbone)
    BertModel(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path / "bert")
    with pytest.raises(SpecError, match="is a 'bert' model; vlm-judge runs blip, qwen2_vl"):
        build_reranker("vlm-judge", {"judge": f"hf:{tmp_path / 'bert'}"}, backbone=tiny_backbone)
    # offline and not cached (conftest sets HF_HUB_OFFLINE): one sentence, at once
    with pytest.raises(WeightsUnavailable, match="hf:/path/to/dir") as err:
        build_reranker("vlm-judge", {"judge": "hf:Salesforce/blip-itm-base-coco"}, backbone=tiny_backbone)
    assert "\n" not in str(err.value)


def test_a_qwen2_vl_judge_scores_the_yes_share_of_each_reference_candidate_pair(picture_gallery, tiny_backbone, tmp_path):
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    from cir.rerankers import build_reranker
    from tests.rerank_models import make_tiny_qwen2_vl

    model_dir = make_tiny_qwen2_vl(tmp_path / "qwen")
    judge = build_reranker("vlm-judge", {"judge": f"hf:{model_dir}"}, backbone=tiny_backbone)
    assert judge.params()["family"] == "qwen2_vl"
    vectors = picture_gallery.searcher.vectors(np.arange(6))
    context = QueryContext(vectors[0], "add a red square", vectors[0], 0, picture_gallery)
    ids = np.array([1, 2, 3])
    got = judge.score(context, Candidates(ids, np.array([0.3, 0.2, 0.1], np.float32)))

    model = Qwen2VLForConditionalGeneration.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    tok = processor.tokenizer
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    prompt = processor.apply_chat_template([{"role": "user", "content": [
        {"type": "image"}, {"type": "image"}, {"type": "text", "text": f'The first image is the reference. Does the second image '
                                                                        f'show the reference changed as follows: "add a red square"? Answer yes or no.'}]}],
        tokenize=False, add_generation_prompt=True)
    reference = Image.open(picture_gallery.path(0)).convert("RGB")
    for j, item in enumerate(ids):  # oracle: one pair at a time, no padding
        enc = processor(text=[prompt], images=[reference, Image.open(picture_gallery.path(int(item))).convert("RGB")], return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits[0, -1]
        pair = torch.softmax(logits[[yes, no]].float(), dim=-1)
        assert got[j] == pytest.approx(float(pair[0]), abs=1e-5)
