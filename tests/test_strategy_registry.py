"""The strategy registry: every surface (Store.search, the CLI, the server's form, JSON schema and /info, the Python
client) is derived from the declarations. A throwaway strategy registered inside a test reaches all of them with no
other change; validation errors are typed and name the valid choices; serving imports no training code."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cir.compose import (
    Composed, InvalidParameter, Strategy, UnknownStrategy, build_strategy, describe_strategies, param,
    register_strategy, strategy_names, strategy_spec, unit_rows, unregister_strategy,
)
from cir.errors import QueryError
from tests.server_helpers import running_server, scene_store, scene_store_dir  # noqa: F401 - fixtures
from tests.server_helpers import LOCAL_URL as LOCAL  # noqa: E402 - TestClient's base URL: a Host the server answers

ROOT = Path(__file__).resolve().parents[1]
TEXT = "remove the laptop and add a dog"


@dataclass(frozen=True)
class BlendParams:
    alpha: float = param(0.25, min=0.0, max=1.0, help="share of the reference image in the blend")


class Blend(Strategy):
    """normalize(alpha * image + (1 - alpha) * text): sum with weights that add up to one."""

    def __init__(self, params: BlendParams) -> None:
        self.blend = params

    def params(self) -> dict:
        return {"alpha": self.blend.alpha}

    def compose(self, backbone, images, texts) -> Composed:
        n = self._check(images, texts)
        txt = backbone.encode_texts(list(texts))
        vec = unit_rows(self.blend.alpha * unit_rows(images) + (1 - self.blend.alpha) * txt)
        return Composed(vec, [{"strategy": self.name, **self.params()}] * n)


@pytest.fixture
def blend():
    """'blend' registered for the test only, as a plugin module in cir/compose/ would register it."""
    register_strategy("blend", "alpha * image + (1 - alpha) * text, normalized", params=BlendParams)(Blend)
    try:
        yield strategy_spec("blend")
    finally:
        unregister_strategy("blend")
    assert "blend" not in strategy_names()


def same_ranking(a, b) -> None:
    assert [h.id for h in a.results] == [h.id for h in b.results]
    np.testing.assert_allclose([h.score for h in a.results], [h.score for h in b.results], atol=1e-5)


# --- the declarations ----------------------------------------------------------------------------------------------
def test_builtin_declarations():
    assert strategy_names() == ("image", "text", "sum", "arithmetic", "pic2word", "combiner", "qformer")
    assert strategy_names(learned=False) == ("image", "text", "sum", "arithmetic")
    described = {d["name"]: d for d in describe_strategies()}
    assert [p["name"] for p in described["sum"]["params"]] == ["image_weight", "text_weight"]
    assert [p["name"] for p in described["arithmetic"]["params"]] == ["add_weight", "remove_weight"]
    weight = described["arithmetic"]["params"][0]
    assert (weight["type"], weight["default"], weight["min"], weight["max"]) == ("float", 1.0, -100.0, 100.0)
    assert weight["help"] == "weight of each added object"
    assert (described["image"]["needs_text"], described["text"]["needs_image"]) == (False, False)
    for name in ("pic2word", "combiner", "qformer"):  # learned: where their trained weights come from is declared too
        assert described[name]["learned"] and described[name]["params"] == []
        assert described[name]["weights"]["kind"] == name and f"composer-{name}.safetensors" in described[name]["weights"]["found"]
    assert all(d["description"] and "\n" not in d["description"] for d in described.values())
    assert json.loads(json.dumps(describe_strategies())) == describe_strategies()  # plain JSON
    assert build_strategy("sum", {"image_weight": 0.5}).params() == {"weights": {"image": 0.5, "text": 1.0}}


def test_validation_errors_are_typed_and_name_the_choices():
    with pytest.raises(UnknownStrategy, match="unknown strategy 'sun'; choose one of image, text, sum, arithmetic, pic2word, combiner, qformer"):
        build_strategy("sun")
    with pytest.raises(InvalidParameter, match=r"strategy 'sum' takes image_weight \(float in \[-100, 100\]\), text_weight .*got 'add_weight'"):
        build_strategy("sum", {"add_weight": 1.0})
    with pytest.raises(InvalidParameter, match=r"'image_weight' of strategy 'sum' must lie in \[-100, 100\], got 101"):
        build_strategy("sum", {"image_weight": 101})
    with pytest.raises(InvalidParameter, match=r"must be a number in \[-100, 100\], got str"):
        build_strategy("sum", {"image_weight": "0.5"})
    with pytest.raises(InvalidParameter, match="finite"):
        build_strategy("arithmetic", {"add_weight": float("inf")}, parser=object())
    with pytest.raises(InvalidParameter, match="strategy 'image' takes no parameters; got 'image_weight'"):
        build_strategy("image", {"image_weight": 1.0})
    assert issubclass(UnknownStrategy, QueryError) and issubclass(InvalidParameter, QueryError)


def test_bad_declarations_are_refused_at_registration():
    @dataclass(frozen=True)
    class NoHelp:
        alpha: float = 0.5

    @dataclass(frozen=True)
    class Reserved:
        k: int = param(3, help="clashes with the query's k")

    @dataclass(frozen=True)
    class OutOfBounds:
        alpha: float = param(2.0, min=0.0, max=1.0, help="a default outside its own bounds")

    @dataclass(frozen=True)
    class OtherType:
        image_weight: int = param(1, help="sum declares image_weight a float")

    for params, error, words in ((NoHelp, TypeError, "no help"), (Reserved, TypeError, "taken by the query"),
                                 (OutOfBounds, InvalidParameter, "must lie in [0, 1]"), (OtherType, ValueError, "declares it a float")):
        with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
            register_strategy("bad", "a bad declaration", params=params)(type("Bad", (Blend,), {}))
        assert "bad" not in strategy_names()
    with pytest.raises(ValueError, match="already registered"):
        register_strategy("sum", "a second sum")(type("Sum2", (Blend,), {}))


# --- one declaration, every surface ---------------------------------------------------------------------------------
def test_a_new_strategy_reaches_store_cli_server_and_client(blend, scene_store, capsys):  # noqa: F811
    from fastapi.testclient import TestClient

    from typer.testing import CliRunner

    from cir.cli import build_app, main
    from cir.client import Client, RemoteQueryError
    from cir.server import ServeConfig, create_app

    # Store.search: keywords or params=, validated by the declaration; blend(alpha) is sum(alpha, 1 - alpha)
    by_keyword = scene_store.search(item_id=2, text=TEXT, strategy="blend", k=5, alpha=0.25)
    by_dict = scene_store.search(item_id=2, text=TEXT, strategy="blend", k=5, params={"alpha": 0.25})
    as_sum = scene_store.search(item_id=2, text=TEXT, strategy="sum", k=5, image_weight=0.25, text_weight=0.75)
    same_ranking(by_keyword, as_sum)
    same_ranking(by_dict, as_sum)
    assert by_keyword.explanation == {"strategy": "blend", "alpha": 0.25}
    assert scene_store.search(item_id=2, text=TEXT, strategy="blend", k=5).explanation["alpha"] == 0.25  # the default
    with pytest.raises(InvalidParameter, match=r"must lie in \[0, 1\]"):
        scene_store.search(item_id=2, text=TEXT, strategy="blend", alpha=1.5)
    with pytest.raises(InvalidParameter, match="strategy 'blend' takes alpha"):
        scene_store.search(item_id=2, text=TEXT, strategy="blend", image_weight=1.0)

    # the CLI: --strategy lists it with its description, --alpha exists with its bounds and help
    assert main(["search", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "blend: alpha * image + (1 - alpha) * text, normalized" in help_text.replace("│ ", "").replace(" │", "")
    assert "--alpha" in help_text and "0.0<=x<=1.0" in help_text.replace(" ", "")
    store_dir = str(scene_store.root)
    assert main(["search", "--store", store_dir, "--item-id", "2", "--text", TEXT, "--strategy", "blend",
                 "--alpha", "0.25", "-k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in out["results"]] == [h.id for h in as_sum.results]
    assert out["query"]["composition"] == {"strategy": "blend", "alpha": 0.25}
    refused = CliRunner().invoke(build_app(), ["search", "--store", store_dir, "--item-id", "2", "--strategy", "blend", "--alpha", "3"])
    assert refused.exit_code == 2 and "--alpha" in refused.output and "less than or equal to 1" in refused.output
    assert main(["search", "--store", store_dir, "--item-id", "2", "--text", TEXT, "--strategy", "sum", "--alpha", "0.5"]) == 2
    assert "strategy 'sum' takes --image-weight, --text-weight; --alpha is for blend" in capsys.readouterr().err

    # the server: a form field and a JSON variant with the declared bounds and help; /info lists it
    app = create_app(ServeConfig(store=scene_store.root, refresh_interval_s=0), store=scene_store)
    client = TestClient(app, base_url=LOCAL)
    schema = client.get("/openapi.json").json()
    models = schema["components"]["schemas"]
    form = next(s for s in models.values() if "image" in s.get("properties", {}) and "alpha" in s["properties"])
    alpha = form["properties"]["alpha"]
    assert (alpha["type"], alpha["minimum"], alpha["maximum"]) == ("number", 0.0, 1.0)
    assert alpha["description"] == "blend: share of the reference image in the blend (default 0.25)"
    assert "blend" in form["properties"]["strategy"]["enum"]
    blend_form = next(v for v in form["oneOf"] if v["properties"]["strategy"]["const"] == "blend")
    from cir.server.schemas import rerank_form_fields

    common = {"image", "item_id", "text", "strategy", "k", "exclude_reference", "folder", *rerank_form_fields()}
    assert set(blend_form["properties"]) - common == {"alpha"}  # the re-rank stage's fields are every variant's
    assert models["BlendParams"]["properties"]["alpha"]["maximum"] == 1.0
    assert {"$ref": "#/components/schemas/SearchBlendRequest"} in models["SearchRequest"]["oneOf"]
    info = {s["name"]: s for s in client.get("/info").json()["strategies"]}
    assert info["blend"]["params"] == [{"name": "alpha", "type": "float", "default": 0.25, "min": 0.0, "max": 1.0,
                                        "help": "share of the reference image in the blend"}]
    assert info["blend"]["description"] == "alpha * image + (1 - alpha) * text, normalized"
    r = client.post("/search", data={"item_id": "2", "text": TEXT, "strategy": "blend", "alpha": "0.25", "k": "5"})
    assert r.status_code == 200, r.text
    assert [h["id"] for h in r.json()["results"]] == [h.id for h in as_sum.results]
    js = client.post("/search/json", json={"item_id": 2, "text": TEXT, "strategy": "blend", "params": {"alpha": 0.25}, "k": 5})
    assert js.status_code == 200, js.text
    assert js.json()["results"] == r.json()["results"]
    too_big = client.post("/search/json", json={"item_id": 2, "text": TEXT, "strategy": "blend", "params": {"alpha": 2}})
    assert too_big.status_code == 422 and "alpha" in too_big.json()["message"]
    wrong = client.post("/search", data={"item_id": "2", "text": TEXT, "strategy": "sum", "alpha": "0.5"})
    assert wrong.status_code == 422 and "strategy 'sum' takes image_weight" in wrong.json()["message"]

    # the Python client over real HTTP: the parameter travels as the field the server derived
    with running_server(app) as url, Client(url) as remote:
        same_ranking(remote.search(item_id=2, text=TEXT, strategy="blend", k=5, alpha=0.25), as_sum)
        with pytest.raises(RemoteQueryError, match=r"alpha"):
            remote.search(item_id=2, text=TEXT, strategy="blend", params={"alpha": -1})


def test_no_surface_outside_compose_names_a_parameter():
    """The code of the store, the server, the client, the CLI and the page never spells a declared parameter: they
    all read the declarations (docstrings may show examples)."""
    names = {p["name"] for d in describe_strategies() for p in d["params"]}
    assert names == {"image_weight", "text_weight", "add_weight", "remove_weight"}
    found = []
    for path in sorted((ROOT / "cir").rglob("*.py")):
        if "compose" in path.relative_to(ROOT / "cir").parts:
            continue
        found += [f"{path.relative_to(ROOT)}: {word}" for word in _code_words(path.read_text()) & names]
    for path in sorted((ROOT / "cir" / "server" / "static").iterdir()):
        found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n in path.read_text() or n.replace("_", "-") in path.read_text()]
    assert not found, found


def _code_words(source: str) -> set[str]:
    """Identifiers, keywords and string constants of a module, docstrings left out."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    words = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.add(node.id)
        elif isinstance(node, ast.Attribute):
            words.add(node.attr)
        elif isinstance(node, (ast.keyword, ast.arg)) and node.arg:
            words.add(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.update(node.value.replace("-", "_").split())
    return words


def test_serving_imports_no_training_code():
    code = ("import sys, cir.server.app, cir.client, cir.cli.search_cmd, cir.compose, cir.compose.pic2word, "
            "cir.compose.combiner, cir.compose.qformer; print(sorted(m for m in sys.modules if m.startswith('cir.train')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_docs_table_is_the_registry():
    doc = (ROOT / "docs" / "serving.md").read_text()
    for d in describe_strategies():
        params = ", ".join(f"`{p['name']}` ({p['type']}, {p['default']:g}, [{p['min']:g}, {p['max']:g}]: {p['help']})"
                           for p in d["params"]) or "none"
        row = f"| `{d['name']}` | {d['description']} | {params}"
        assert row in doc, row


@dataclass(frozen=True)
class TypedParams:
    count: int = param(2, min=1, help="an integer with a lower bound only")
    flag: bool = param(False, help="a switch")
    label: str = param("plain", help="a word")


class Typed(Strategy):
    """The reference image, with its parameters in the explanation: every parameter type on every surface."""

    def __init__(self, params: TypedParams) -> None:
        self.typed = params

    def compose(self, backbone, images, texts=None) -> Composed:
        n = self._check(images, texts)
        return Composed(unit_rows(images), [{"strategy": self.name, "count": self.typed.count, "flag": self.typed.flag,
                                             "label": self.typed.label}] * n)


def test_every_parameter_type_on_every_surface(scene_store, capsys):  # noqa: F811
    from fastapi.testclient import TestClient

    from cir.cli import main
    from cir.server import ServeConfig, create_app

    register_strategy("typed", "the reference image, parameters shown", params=TypedParams, needs_text=False)(Typed)
    try:
        with pytest.raises(InvalidParameter, match=r"must be an integer in \[1, inf\], got bool"):
            build_strategy("typed", {"count": True})
        with pytest.raises(InvalidParameter, match=r"must lie in \[1, inf\], got 0"):
            build_strategy("typed", {"count": 0})
        with pytest.raises(InvalidParameter, match="must be true or false, got int"):
            build_strategy("typed", {"flag": 1})
        want = {"strategy": "typed", "count": 3, "flag": True, "label": "hi"}
        assert scene_store.search(item_id=1, strategy="typed", count=3, flag=True, label="hi").explanation == want

        assert main(["search", "--store", str(scene_store.root), "--item-id", "1", "--strategy", "typed", "--count", "3",
                     "--flag", "--label", "hi", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["query"]["composition"] == want

        client = TestClient(create_app(ServeConfig(store=scene_store.root), store=scene_store), base_url=LOCAL)
        form = client.post("/search", data={"item_id": "1", "strategy": "typed", "count": "3", "flag": "true", "label": "hi"})
        assert form.status_code == 200, form.text
        assert {k: form.json()["explanation"][k] for k in want} == want
        js = client.post("/search/json", json={"item_id": 1, "strategy": "typed", "params": {"count": 3, "flag": True, "label": "hi"}})
        assert js.status_code == 200 and {k: js.json()["explanation"][k] for k in want} == want
        assert client.post("/search", data={"item_id": "1", "strategy": "typed", "count": "0"}).status_code == 422
        info = {s["name"]: s for s in client.get("/info").json()["strategies"]}
        assert [(p["name"], p["type"], p["min"], p["max"]) for p in info["typed"]["params"]] == [
            ("count", "int", 1, None), ("flag", "bool", None, None), ("label", "str", None, None)]
    finally:
        unregister_strategy("typed")


# --- built once: BuiltStrategies -------------------------------------------------------------------------------------
def test_a_store_builds_each_named_strategy_once_and_keeps_the_answers(blend, scene_store):  # noqa: F811
    """Store.search by name reuses what it built for the same name and parameters (a learned strategy would read
    and check its weights file per search otherwise); other parameters build another; answers are unchanged."""
    from cir.compose.registry import BuiltStrategies

    built = BuiltStrategies(size=2)
    first = built.build("blend", {"alpha": 0.5})
    assert built.build("blend", {"alpha": 0.5}) is first and built.build("blend", {"alpha": 0.4}) is not first
    assert built.build("sum") is not built.build("sum", parser=object())  # the parser is part of what was built
    assert len(built) == 2 and built.build("blend", {"alpha": 0.5}) is not first  # the oldest went first
    with pytest.raises(InvalidParameter, match="alpha"):
        built.build("blend", {"alpha": 2.0})
    with pytest.raises(UnknownStrategy, match="blend"):
        built.build("blnd")
    kept = built.build("blend", {"alpha": 0.5})
    unregister_strategy("blend")  # a kept strategy never outlives its registration
    with pytest.raises(UnknownStrategy, match="unknown strategy 'blend'"):
        built.build("blend", {"alpha": 0.5})
    register_strategy("blend", "registered again", params=BlendParams)(type("Blend2", (Blend,), {}))
    assert type(built.build("blend", {"alpha": 0.5})).__name__ == "Blend2" and built.build("blend", {"alpha": 0.5}) is not kept
    fresh = scene_store.search(item_id=0, text=TEXT, strategy=build_strategy("blend", {"alpha": 0.3}), k=5)
    held = len(scene_store._strategies)
    for _ in range(3):
        same_ranking(scene_store.search(item_id=0, text=TEXT, strategy="blend", alpha=0.3, k=5), fresh)
    assert len(scene_store._strategies) == held + 1  # three searches, one build
