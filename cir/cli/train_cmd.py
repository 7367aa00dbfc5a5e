"""``cir train ...``: one sub-command per trainer; each lives in its own module with register(train)."""

from __future__ import annotations

import importlib

import typer

TRAINER_MODULES = (
    "cir.cli.train_backbone_cmd",
    "cir.cli.train_edits_cmd",
    "cir.cli.train_pic2word_cmd",
    "cir.cli.train_combiner_cmd",
    "cir.cli.train_finetune_cmd",
    "cir.cli.train_reranker_cmd",
    "cir.cli.train_aesthetic_cmd",
    "cir.cli.train_captioner_cmd",
    "cir.cli.train_qformer_cmd",
)


def register(app: typer.Typer) -> None:
    train = typer.Typer(help="Train cir's own components: the demo backbone, the edit tagger, the learned composers, a fine-tuned backbone.",
                        epilog="Example: cir train pic2word --backbone cir:demo --preset smoke --out runs/pic2word", no_args_is_help=True)
    app.add_typer(train, name="train")
    for name in TRAINER_MODULES:
        importlib.import_module(name).register(train)
