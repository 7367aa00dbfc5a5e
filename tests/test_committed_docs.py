"""Committed documents name no machine's paths: a reader's checkout is not /work/main (or any other absolute path
the results were measured in)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MACHINE_PATH = re.compile(r"(?<![\w.:/~-])/(?:work|home|root|Users)/[\w.-]+")  # /tmp/x in an example is fine


def committed_docs() -> list[Path]:
    files = [REPO / "README.md", REPO / "benchmarks" / "RESULTS.md"]
    files += sorted((REPO / "docs").glob("**/*.md")) + sorted((REPO / "benchmarks" / "results").glob("**/*.md"))
    return [f for f in files if f.is_file()]


def test_docs_and_results_hold_no_machine_paths():
    assert len(committed_docs()) >= 5
    assert MACHINE_PATH.search("tagger checkpoint `/work/main/cir/edits/weights/tagger`")  # what it catches
    assert not MACHINE_PATH.search("openclip:ViT-B-32//data/w.pt, ~/photos.cir, cir/edits/weights/tagger")
    found = [f"{f.relative_to(REPO)}:{n}: {m.group(0)}" for f in committed_docs()
             for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
             for m in MACHINE_PATH.finditer(line)]
    assert not found, "machine paths in committed docs (write repo-relative ones):\n" + "\n".join(found)
