"""``cir edits``: read modification texts as objects to add and objects to remove."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

PARSER_HELP = "auto (the trained tagger when one is found, else rules), tagger or rules"


def _texts(texts: list[str] | None, file: Path | None) -> list[str]:
    from cir.errors import CirError

    out = list(texts or [])
    if file is not None:
        if not file.is_file():
            raise CirError(f"--file {file} does not exist or is not a file")
        out.extend(file.read_text(encoding="utf-8", errors="replace").splitlines())
    if not out:
        raise CirError("no text given: pass texts as arguments or --file FILE (one text per line)")
    return out


def register(app: typer.Typer) -> None:
    edits = typer.Typer(help="Edit understanding: the objects a modification text adds and removes.",
                        epilog='Example: cir edits parse "remove the cup and add a lamp"', no_args_is_help=True)
    app.add_typer(edits, name="edits")

    @edits.command("parse", epilog='Example: cir edits parse "add a red hat" "no dog" --json')
    def parse(
        texts: Optional[List[str]] = typer.Argument(None, help="modification texts"),
        file: Optional[Path] = typer.Option(None, "--file", help="a text file, one modification text per line"),
        json_out: bool = typer.Option(False, "--json", help='one JSON object per text: {"text", "add", "remove"}'),
        parser: str = typer.Option("auto", help=PARSER_HELP),
        checkpoint: Optional[Path] = typer.Option(None, help="tagger checkpoint directory (default: the promoted one, see cir models list, else the shipped one)"),
    ) -> None:
        """Print the objects each text adds and removes (each as written in the text, without its article)."""
        from cir.backbones.quiet import quiet_loading
        from cir.edits.parsers import get_parser

        items = _texts(texts, file)
        with quiet_loading():
            chosen = get_parser(parser, checkpoint)
        for text, edit in zip(items, chosen.parse_many(items)):
            if json_out:
                typer.echo(json.dumps({"text": text, **edit.to_dict()}, ensure_ascii=False))
            else:
                typer.echo(f"{text}\n  add: {', '.join(edit.add) or '-'}\n  remove: {', '.join(edit.remove) or '-'}")
                for warning in edit.warnings:
                    typer.echo(f"  note: {warning}")
        if not json_out:
            typer.echo(f"(parser: {chosen.name})", err=True)

    @edits.command("eval", epilog="Example: cir edits eval --sentences 500")
    def evaluate(
        checkpoint: Optional[Path] = typer.Option(None, help="tagger checkpoint directory (default: the promoted one, see cir models list, else the shipped one)"),
        sentences: int = typer.Option(2000, help="validation sentences per set, balanced over edit kinds"),
        seed: int = typer.Option(0, help="the split seed the tagger was trained with"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="also write the scores to this JSON file"),
    ) -> None:
        """Span F1 of the tagger on the held-out validation split (per edit kind; unseen objects and templates),
        and how often the tagger and the rules read the offline world's triplet texts exactly right."""
        from cir.edits.evaluate import evaluate_model, format_scores, validation_sets, world_agreement
        from cir.backbones.quiet import quiet_loading
        from cir.edits.parsers import rule_parser, tagger_parser

        with quiet_loading():
            tagger = tagger_parser(checkpoint)
        report = {"checkpoint": getattr(tagger, "source", "")}
        for vs in validation_sets(sentences, seed=seed):
            scores = evaluate_model(tagger.model, tagger.tokenizer, list(vs.sentences))
            report[vs.name] = scores
            typer.echo(format_scores(vs.name, scores))
        from cir.edits.audit import everyday_agreement

        for name, p in (("tagger", tagger), ("rules", rule_parser())):
            everyday = everyday_agreement(p)
            report[f"everyday-{name}"] = everyday
            kinds = ", ".join(f"{k} {v['right']}/{v['total']}" for k, v in everyday["by_kind"].items())
            typer.echo(f"everyday phrasings (audit) read right by the {name}: {everyday['right']}/{everyday['total']} ({kinds})")
            for miss in everyday["wrong"]:
                typer.echo(f"  wrong: {miss['text']!r} read as {miss['read']}")
        for name, p in (("tagger", tagger), ("rules", rule_parser())):
            agree = world_agreement(p)
            report[f"world-{name}"] = agree
            typer.echo(f"scenes world triplet texts (val+test) read exactly right by the {name}: "
                       f"{agree['right']}/{agree['total']} ({100 * agree['exact']:.2f}%)")
        if json_out:
            json_out.write_text(json.dumps(report, indent=2, default=float) + "\n")
