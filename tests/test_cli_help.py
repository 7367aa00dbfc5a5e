"""Help that teaches: every command's --help ends with an example, enumerated options list their choices, no help
text uses the project's internal names; --help imports no heavy library; `cir search --verbose` says where the
time went."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cir.cli import build_app, main


def command_paths() -> list[tuple[str, ...]]:
    """Every command and command group of the CLI, as argv prefixes (the root is ())."""
    from typer.main import get_command

    found: list[tuple[str, ...]] = []

    def walk(command, path: tuple[str, ...]) -> None:
        found.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, path + (name,))

    walk(get_command(build_app()), ())
    return found


def help_text(capsys, monkeypatch, *path: str) -> str:
    monkeypatch.setenv("COLUMNS", "100")
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", out))  # the text, without the boxes and the wrapping


def test_the_walk_finds_every_command():
    paths = command_paths()
    assert {("index",), ("search",), ("serve",), ("demo",), ("eval", "cirr"), ("train", "finetune"),
            ("scenes", "export"), ("edits", "parse")} <= set(paths)
    assert len(paths) >= 20


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "cir")
def test_every_help_has_an_example_and_no_internal_names(path, capsys, monkeypatch):
    text = help_text(capsys, monkeypatch, *path)
    example = re.search(r"Example: (cir [^(]+)", text)
    assert example, f"cir {' '.join(path)} --help has no example line"
    if path:  # a command's example runs that command (the root's shows the first two)
        assert example.group(1).startswith("cir " + " ".join(path)), example.group(1)
    assert not re.search(r"\bseed 00\d", text, re.I), "internal names ('seed 000') in user-facing help"


def test_enumerated_options_show_their_choices(capsys, monkeypatch):
    from cir.compose import strategy_names
    from cir.train.presets import preset_names
    from cir.train.samplers import SAMPLER_NAMES

    search = help_text(capsys, monkeypatch, "search")
    assert all(f"{name}:" in search for name in strategy_names())
    finetune = help_text(capsys, monkeypatch, "train", "finetune")
    assert all(name in finetune for name in SAMPLER_NAMES) and all(name in finetune for name in preset_names("finetune"))
    assert "auto (cuda when torch sees a GPU, else cpu), cpu, cuda or cuda:N" in finetune
    cirr = help_text(capsys, monkeypatch, "eval", "cirr")
    assert "auto (cuda when torch sees a GPU" in cirr and "val or test1" in cirr
    for path in (("index",), ("eval", "cirr"), ("scenes", "export"), ("train", "pic2word")):
        text = help_text(capsys, monkeypatch, *path)
        assert "--progress --no-progress" in text and "--quiet -q" in text, path


def test_an_unknown_device_names_the_choices(capsys):
    assert main(["train", "pic2word", "--device", "gpu", "--preset", "smoke"]) == 2
    assert "unknown device 'gpu'; choose one of auto (cuda when torch sees a GPU, else cpu), cpu, cuda or cuda:N" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [(), ("--help",), ("search", "--help"), ("train", "finetune", "--help")])
def test_help_imports_no_heavy_library(argv):
    """`import cir.cli` and printing any help must not import torch, transformers, faiss or open_clip (a fresh
    interpreter: this one has them loaded already)."""
    code = ("import contextlib, io, sys\nimport cir.cli\n"
            "with contextlib.redirect_stdout(io.StringIO()): cir.cli.main(sys.argv[1:])\n"
            "print(sorted(m for m in ('torch', 'transformers', 'faiss', 'open_clip') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_search_verbose_says_where_the_time_went(tmp_path, tiny_cir_checkpoint, capsys):
    from tests.store_helpers import write_images

    write_images(tmp_path / "photos", 6)
    store = tmp_path / "store"
    assert main(["index", str(tmp_path / "photos"), "--store", str(store), "--backbone", f"cir:{tiny_cir_checkpoint}",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["search", "--store", str(store), "--item-id", "1", "--text", "with a red hat", "-k", "3", "--verbose"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 3  # the results stay on stdout, alone
    line = next(x for x in captured.err.splitlines() if x.startswith("time: "))
    names = [part.rsplit(" ", 2)[0] for part in line[len("time: "):].split(", ")]
    assert names == ["open store", "load backbone", "prepare strategy", "encode reference", "compose", "first stage",
                     "rerank", "total"]
    assert all(re.fullmatch(r"\d+\.\d ms", part.split(" ", len(n.split()))[-1])
               for part, n in zip(line[len("time: "):].split(", "), names))

    assert main(["search", "--store", str(store), "--item-id", "1", "--text", "with a red hat", "-k", "3"]) == 0
    assert "time: " not in capsys.readouterr().err


def test_progress_bars_only_on_a_terminal_unless_asked(tmp_path, tiny_cir_checkpoint, capsys):
    from tests.store_helpers import write_images

    write_images(tmp_path / "photos", 4)
    spec = f"cir:{tiny_cir_checkpoint}"
    assert main(["index", str(tmp_path / "photos"), "--store", str(tmp_path / "a"), "--backbone", spec]) == 0
    assert "indexing" not in capsys.readouterr().err  # stderr is captured here: not a terminal
    assert main(["index", str(tmp_path / "photos"), "--store", str(tmp_path / "b"), "--backbone", spec, "--progress"]) == 0
    assert "indexing: 100%" in capsys.readouterr().err  # asked for
    export = ["scenes", "export", "--format", "triplets", "--groups", "2", "--size", "16"]
    assert main([*export, "--out", str(tmp_path / "t1")]) == 0
    assert "img/s" not in capsys.readouterr().err
    assert main([*export, "--out", str(tmp_path / "t2"), "--progress"]) == 0
    assert "triplets:   0%" in capsys.readouterr().err
