"""`cir search` prints one line per result whatever the file names hold (newlines, tabs, backslashes)."""

from __future__ import annotations

import cir
from cir.store.pathcodec import printable as printable_path
from tests.store_helpers import write_png


def test_printable_path_escapes_what_would_break_a_line():
    assert printable_path("a\nb.png") == "a\\nb.png"
    assert printable_path("tab\there") == "tab\\there"
    assert printable_path("back\\slash") == "back\\\\slash"
    assert printable_path("bad\udcff.png") == "bad\\xff.png"  # a non-UTF-8 byte, as os.fsdecode gives it
    assert printable_path("café/été.jpg") == "café/été.jpg"


def test_cir_search_prints_one_line_per_result_for_newline_names(tmp_path, tiny_backbone, capsys):
    from cir.cli import main

    images = tmp_path / "images"
    images.mkdir()
    names = ["two\nlines.png", "tab\tbed.png", "plain.png"]
    for seed, name in enumerate(names):
        write_png(images / name, seed)
    with cir.open_store(tmp_path / "store", backbone=tiny_backbone, create=True) as store:
        store.index([images], progress=False, workers=0)
        assert len(store) == 3
    capsys.readouterr()
    assert main(["search", "--store", str(tmp_path / "store"), "--text", "a cat", "--strategy", "text", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3, lines
    printed = {line.split("  ", 2)[2] for line in lines}
    assert printed == {printable_path(str(images / name)) for name in names}
