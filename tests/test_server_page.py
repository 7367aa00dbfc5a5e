"""The web page in headless Chromium (the system's `chromium`, driven by Playwright): upload, parsed-edit chips,
search, click-to-refine with a trail and undo, keyboard use, no external requests; the layout is checked by element
boxes and by a loose comparison of a downscaled screenshot with tests/data/server_page.png
(set CIR_UPDATE_SCREENSHOTS=1 to rewrite it after an intended change of the page)."""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cir.server import ServeConfig, create_app
from tests.server_helpers import running_server, scene_store, scene_store_dir  # noqa: F401 - fixtures

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BASELINE = Path(__file__).resolve().parent / "data" / "server_page.png"
COMPARE_SIZE = (64, 48)  # screenshots are compared at this size, in greyscale
MAX_MEAN_DIFF = 12.0  # mean absolute difference allowed (0-255 scale): layout, not pixels

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium executable on PATH: apt-get install chromium (make install does it as root)"),
]


@pytest.fixture(scope="module")
def page_url(scene_store):  # noqa: F811
    with running_server(create_app(ServeConfig(store=scene_store.root), store=scene_store)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def all_images_loaded(page) -> None:
    """Every result thumbnail has arrived and decoded (Playwright's own waits: the page's CSP forbids eval)."""
    from playwright.sync_api import expect

    expect(page.locator("#results img[src]")).to_have_count(page.locator("#results img").count())
    # networkidle is a load state the page reached long ago, so it does not wait for a re-rendered list's thumbnails:
    # wait on each image's own `complete` (retried by Playwright), then check that none of them is broken
    for image in page.locator("#results img").all():
        expect(image).to_have_js_property("complete", True)
    sizes = page.locator("#results img").evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert all(w > 0 for w in sizes), sizes


def loose_difference(png: bytes, baseline: Path) -> float:
    def small(image):
        return np.asarray(image.convert("L").resize(COMPARE_SIZE, Image.BILINEAR), np.float32)

    with Image.open(io.BytesIO(png)) as shot, Image.open(baseline) as base:
        return float(np.abs(small(shot) - small(base)).mean())


def test_upload_search_refine_undo(browser, page_url, scene_store):  # noqa: F811
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests, console_errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.goto(page_url + "/")
    expect(page.locator("#store-info")).to_contain_text("12 images")
    assert page.locator("#strategy option").all_inner_texts() == ["default (sum)", "image", "text", "sum", "arithmetic"]
    assert page.locator("#strategy-lines li").count() == 4  # one line per strategy, from /info
    assert "needs a reference image" in page.locator('#strategy-lines li[data-strategy="image"]').inner_text()

    # upload a reference (the stored cat + laptop scene), read the chips, search
    page.set_input_files("#file-input", scene_store.item(2).path)
    page.wait_for_selector("#reference-img:not([hidden])")
    expect(page.locator("#trail-list li")).to_have_count(1)
    page.fill("#text", "remove the laptop and add a dog")
    page.wait_for_selector(".chip.remove")
    assert page.locator(".chip.add").all_inner_texts() == ["+ dog"]
    assert page.locator(".chip.remove").all_inner_texts() == ["− laptop"]
    page.press("#text", "Enter")
    expect(page.locator("#results li")).to_have_count(11)  # 12 items minus the reference
    scores = [float(s) for s in page.locator("#results .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    expected = scene_store.search(image=scene_store.item(2).path, text="remove the laptop and add a dog", k=12)
    assert [int(i) for i in page.locator("#results button.result").evaluate_all("bs => bs.map(b => b.dataset.id)")] == [
        h.id for h in expected.results]
    assert "strategy sum" in page.inner_text("#explanation")
    all_images_loaded(page)

    # layout: reference left of the text, results below the query, several cards per row, no horizontal scroll
    zone, text, grid = (page.locator(s).bounding_box() for s in ("#reference-zone", "#text", "#results"))
    assert zone["x"] + zone["width"] <= text["x"] and grid["y"] >= zone["y"] + zone["height"]
    tops = [b["y"] for b in (page.locator("#results li").nth(i).bounding_box() for i in range(11))]
    assert tops.count(tops[0]) >= 4
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot = page.screenshot(full_page=False)
    if os.environ.get("CIR_UPDATE_SCREENSHOTS") == "1" or not BASELINE.exists():
        BASELINE.parent.mkdir(parents=True, exist_ok=True)
        Image.open(io.BytesIO(shot)).convert("L").resize((320, 225), Image.BILINEAR).save(BASELINE)
    assert loose_difference(shot, BASELINE) < MAX_MEAN_DIFF

    # click a result: it becomes the reference; search again from it
    first_id = int(page.locator("#results button.result").first.get_attribute("data-id"))
    page.locator("#results button.result").first.click()
    expect(page.locator("#trail-list li")).to_have_count(2)
    first_name = Path(scene_store.item(first_id).path).name
    reference = page.locator("#reference-img")
    expect(reference).to_have_attribute("alt", f"reference: {first_name}")  # named by file, not by id
    assert first_name in page.locator("#trail-list li").nth(1).inner_text()
    page.fill("#text", "add an umbrella")
    page.click("#search-btn")
    expect(page.locator(f'#results button[data-id="{first_id}"]')).to_have_count(0)  # the new reference is excluded
    expect(page.locator("#results li")).to_have_count(11)

    # by keyboard: arrow to the second result, Enter refines from it, Alt+Z undoes
    page.locator("#results button.result").first.focus()
    page.keyboard.press("ArrowRight")
    second_id = int(page.evaluate("document.activeElement.dataset.id"))
    page.keyboard.press("Enter")
    expect(page.locator("#trail-list li")).to_have_count(3)
    expect(reference).to_have_attribute("alt", f"reference: {Path(scene_store.item(second_id).path).name}")
    page.keyboard.press("Alt+z")
    expect(page.locator("#trail-list li")).to_have_count(2)
    first_name = Path(scene_store.item(first_id).path).name
    expect(reference).to_have_attribute("alt", f"reference: {first_name}")  # named by file, not by id
    assert first_name in page.locator("#trail-list li").nth(1).inner_text()
    page.click("#undo")
    expect(page.locator("#trail-list li")).to_have_count(1)
    expect(page.locator("#undo")).to_be_disabled()

    # strategy controls, built from /info, show the parameters that strategy declares, with bounds and help
    page.select_option("#strategy", "sum")
    assert page.is_visible("#param-sum-image_weight") and not page.is_visible("#param-arithmetic-add_weight")
    assert "late fusion" in page.inner_text("#strategy-help")
    page.select_option("#strategy", "arithmetic")
    assert page.is_visible("#param-arithmetic-add_weight") and not page.is_visible("#param-sum-image_weight")
    add = page.locator("#param-arithmetic-add_weight")
    assert (add.get_attribute("min"), add.get_attribute("max"), add.input_value()) == ("-100", "100", "1")
    assert "weight of each added object" in page.locator("label.param", has=add).get_attribute("title")
    assert "objects added" in page.inner_text("#strategy-help")
    page.fill("#param-arithmetic-add_weight", "1.5")
    page.press("#text", "Enter")
    expect(page.locator("#explanation")).to_contain_text("strategy arithmetic")
    assert "add 1.5" in page.inner_text("#explanation")

    # an error is shown, not thrown: a non-image file
    page.set_input_files("#file-input", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    page.wait_for_selector("#error:not([hidden])")
    assert "not an image" in page.inner_text("#error")

    origin = re.escape(page_url)
    assert all(re.match(f"^({origin}/|blob:|data:)", url) for url in requests), [u for u in requests if not u.startswith(page_url)]
    assert not console_errors, console_errors
    page.close()


def test_page_asks_for_the_api_key(browser, scene_store):  # noqa: F811
    from playwright.sync_api import expect

    key = "page-test-key-5678"
    with running_server(create_app(ServeConfig(store=scene_store.root, api_key=key), store=scene_store)) as url:
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_selector("#key-form:not([hidden])")
        page.fill("#api-key", key)
        page.press("#api-key", "Enter")
        expect(page.locator("#store-info")).to_contain_text("12 images")
        page.fill("#text", "add a cat")
        page.select_option("#strategy", "text")
        page.press("#text", "Enter")
        expect(page.locator("#results li")).to_have_count(12)
        all_images_loaded(page)  # thumbnails need the key too: fetched with it, shown from blob URLs
        assert page.locator("#results img").first.get_attribute("src").startswith("blob:")
        page.close()


def _shot(page, tmp_path, name: str) -> Path:
    """A screenshot of the page, kept in the test's folder (and in CIR_PAGE_SHOTS, when set, to look at)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    if os.environ.get("CIR_PAGE_SHOTS"):
        Path(os.environ["CIR_PAGE_SHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["CIR_PAGE_SHOTS"]) / path.name)
    return path


def test_undo_restores_the_step_results_and_a_result_opens_at_full_size(browser, page_url, scene_store, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(page_url + "/")
    expect(page.locator("#store-info")).to_contain_text("12 images")
    page.set_input_files("#file-input", scene_store.item(2).path)
    page.fill("#text", "add a dog")
    page.press("#text", "Enter")
    expect(page.locator("#results li")).to_have_count(11)
    all_images_loaded(page)
    ids = lambda: page.locator("#results button.result").evaluate_all("bs => bs.map(b => b.dataset.id)")  # noqa: E731
    first_results, first_explanation = ids(), page.inner_text("#explanation")
    assert "add dog" in first_explanation
    _shot(page, tmp_path, "page-step1")

    # refine from the third result with another text: new results, new explanation
    page.locator("#results button.result").nth(2).click()
    page.fill("#text", "remove the cat")
    page.press("#text", "Enter")
    expect(page.locator("#explanation")).to_contain_text("remove cat")
    all_images_loaded(page)
    assert ids() != first_results
    _shot(page, tmp_path, "page-step2")

    # undo: the first step's results and explanation come back with its text
    page.click("#undo")
    expect(page.locator("#explanation")).to_contain_text("add dog")
    assert ids() == first_results and page.inner_text("#explanation") == first_explanation
    assert page.input_value("#text") == "add a dog"  # the text that gave those results
    all_images_loaded(page)
    assert "with the results it had" in page.inner_text("#status")
    undo_shot = _shot(page, tmp_path, "page-after-undo")

    # a result opens at full size with its full path
    hit_id = int(first_results[0])
    page.locator("#results li").first.locator("button.open").click()
    expect(page.locator("#viewer")).to_be_visible()
    expect(page.locator("#viewer-path")).to_have_text(scene_store.item(hit_id).path)
    page.wait_for_function("() => { const i = document.getElementById('viewer-img'); return i.complete && i.naturalWidth > 0; }")
    natural = page.locator("#viewer-img").evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert natural == [scene_store.item(hit_id).width, scene_store.item(hit_id).height]  # the original, not a thumbnail
    shown = page.locator("#viewer-img").bounding_box()
    assert shown["width"] >= 240  # drawn large, not at thumbnail size
    viewer_shot = _shot(page, tmp_path, "page-full-size")
    page.click("#viewer-close")
    expect(page.locator("#viewer")).to_be_hidden()

    # an error speaks the page's language (no CLI flags) and clears the stale explanation
    page.select_option("#strategy", "sum")
    page.fill("#text", "")
    page.press("#text", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    error = page.inner_text("#error")
    assert "needs a modification text" in error and "--" not in error and "text=" not in error
    assert page.is_hidden("#explanation")
    for path in (undo_shot, viewer_shot):
        with Image.open(path) as image:
            assert image.size == (1280, 900) and np.asarray(image.convert("L")).std() > 5  # a drawn page, not blank
    page.close()


def test_a_result_from_a_shard_shows_its_caption_and_metadata(browser, tmp_path, tiny_cir_checkpoint):
    """A tiny webdataset shard indexed for real; the page shows each hit's caption, and the viewer its JSON."""
    from playwright.sync_api import expect

    import cir
    from tests.shard_helpers import caption_shard, sample, write_shard

    shard = caption_shard(tmp_path / "shards" / "00000.tar", 0, 3)
    bare = write_shard(tmp_path / "shards" / "00001.tar", [sample("bare", 50)])  # no caption, no metadata
    store = cir.open_store(tmp_path / "store", backbone=f"cir:{tiny_cir_checkpoint}", create=True)
    store.index([str(shard), str(bare)], progress=False, batch_size=2)
    with running_server(create_app(ServeConfig(store=store.root), store=store)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        console_errors = []
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.goto(url + "/")
        expect(page.locator("#store-info")).to_contain_text("4 images")
        page.fill("#text", "a picture")
        page.press("#text", "Enter")
        expect(page.locator("#results li")).to_have_count(4)
        ids = [int(i) for i in page.locator("#results button.result").evaluate_all("bs => bs.map(b => b.dataset.id)")]
        captions = {store.item(i).path: (store.item_meta(store.item(i).path) or {}).get("caption") for i in ids}
        shown = page.locator("#results button.result").evaluate_all(
            "bs => bs.map(b => { const c = b.querySelector('.caption'); return c ? c.textContent : null; })")
        assert shown == [captions[store.item(i).path] for i in ids]  # each card its own caption, none where none
        assert sorted(c for c in shown if c) == ["caption 0", "caption 1", "caption 2"]
        rank = shown.index("caption 1")
        assert "“caption 1”" in page.locator("#results button.result").nth(rank).get_attribute("aria-label")
        expect(page.locator("#results .caption").nth(0)).to_be_visible()

        page.locator("#results button.open").nth(rank).click()
        expect(page.locator("#viewer-caption")).to_have_text("caption 1")
        metadata = page.locator("#viewer-metadata")
        expect(metadata).to_be_visible()
        import json

        assert json.loads(metadata.inner_text()) == {"url": "http://example.invalid/1.png", "width": 48}
        page.click("#viewer-close")
        page.locator("#results button.open").nth(shown.index(None)).click()  # the bare sample: neither is shown
        expect(page.locator("#viewer-caption")).to_be_hidden()
        expect(page.locator("#viewer-metadata")).to_be_hidden()
        assert console_errors == []
        page.close()
