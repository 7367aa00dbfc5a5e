"""``cir search``: rank a store's images for a reference image modified by a text.

The strategy parameters are not written here: one ``--NAME`` option per parameter the strategy registry declares
(``cir.compose.registry``), with its bounds and help, built when the command is registered.
"""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path
from typing import Optional

import typer

from cir.cli.common import strategy_help


def param_options() -> list[inspect.Parameter]:
    """One keyword-only typer option per declared parameter name (shared by the strategies that declare it)."""
    from cir.compose.registry import all_params, loosest_bounds

    out = []
    for name, owners in all_params().items():
        specs = [p for _, p in owners]
        low, high = loosest_bounds(owners)
        help_text = "; ".join(
            f"{s.name}: {p.help} (default {p.default:g}{', in ' + p.bounds_text() if p.bounds_text() else ''})"
            if p.type in (int, float) else f"{s.name}: {p.help} (default {p.default})" for s, p in owners
        )
        flag = "--" + name.replace("_", "-")
        decls = [f"{flag}/--no-{name.replace('_', '-')}"] if specs[0].type is bool else [flag]
        bounds = {"min": low, "max": high} if specs[0].type in (int, float) else {}
        option = typer.Option(None, *decls, help=help_text, show_default=False, **bounds)
        out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[specs[0].type]))
    return out


def check_params(strategy: str, given: dict) -> dict:
    """The options given for ``strategy``'s parameters; an option it does not take is an error naming its own."""
    from cir.compose.registry import InvalidParameter, strategy_spec

    spec = strategy_spec(strategy)
    wrong = [name for name in given if name not in {p.name for p in spec.params}]
    if wrong:
        takes = ", ".join("--" + p.name.replace("_", "-") for p in spec.params) or "no parameter options"
        raise InvalidParameter(f"strategy {strategy!r} takes {takes}; "
                       f"{', '.join('--' + n.replace('_', '-') for n in wrong)} {'is' if len(wrong) == 1 else 'are'} "
                       f"for {' / '.join(_owners(wrong))}")
    return given


def _owners(names: list[str]) -> list[str]:
    from cir.compose.registry import all_params

    table = all_params()
    return list(dict.fromkeys(s.name for n in names for s, _ in table.get(n, [])))


def register(app: typer.Typer) -> None:
    def search(
        store: Path = typer.Option(..., "--store", help="store directory (made by `cir index`)"),
        image: Optional[Path] = typer.Option(None, help="reference image file"),
        item_id: Optional[int] = typer.Option(None, "--item-id", help="a stored item as the reference, by id"),
        text: Optional[str] = typer.Option(None, help='modification text, e.g. "the same but in red"'),
        strategy: Optional[str] = typer.Option(None, help=strategy_help(
            "how image and text combine (default: text for a text alone, image for an image alone, else the best "
            "measured one for the store's backbone: see cir info --store DIR). ")),
        k: int = typer.Option(10, "-k", "--k", min=1, help="results to show"),
        composer: Optional[Path] = typer.Option(None, help="pic2word/combiner: trained weights (a .safetensors file or a directory holding them); default: the backbone's own"),
        include_reference: bool = typer.Option(False, help="keep the reference image in the results when stored"),
        folder: Optional[Path] = typer.Option(None, "--folder", help="only images under this folder (exact top-k among them, whatever the index)"),
        json_out: bool = typer.Option(False, "--json", help="print the query and the results as JSON (docs/search-json.md)"),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="also print where the time went, stage by stage, on stderr"),
        **param_values,
    ) -> None:
        """Print the top-k images: rank, score, path (best first)."""
        import time

        from cir import open_store
        from cir.query.timing import stage_times
        from cir.store.pathcodec import printable

        given = {name: v for name, v in param_values.items() if v is not None}
        started = time.perf_counter()
        with open_store(store) as opened, stage_times() as times:
            times["open store"] = time.perf_counter() - started
            mark = time.perf_counter()
            opened.backbone  # noqa: B018 - loaded here so that its time is its own line
            times["load backbone"] = time.perf_counter() - mark
            if strategy is None and given:  # parameters without a strategy: checked against the one chosen
                from cir.compose.defaults import choose_strategy

                chosen = choose_strategy(opened.spec, image is not None or item_id is not None, bool((text or "").strip()))
                check_params(chosen.name, given)
            params = check_params(strategy, given) if strategy is not None else given
            result = opened.search(
                image=image, text=text, item_id=item_id, strategy=strategy, k=k, params=params,
                exclude_reference=not include_reference, composer=composer, folder=folder,
            )
        if verbose:
            times["total"] = time.perf_counter() - started
            typer.echo("time: " + ", ".join(f"{name} {1000 * sec:.1f} ms" for name, sec in times.items()), err=True)
        if json_out:
            typer.echo(json.dumps(result.to_json()))
            return
        if "default_strategy" in result.explanation:
            typer.echo(f"strategy: {result.query['strategy']} ({result.explanation['default_strategy']})", err=True)
        edits = {key: result.explanation[key] for key in ("add", "remove") if key in result.explanation}
        if edits:
            typer.echo(f"edits: {', '.join(f'{key} {v}' for key, values in edits.items() for v in values) or 'none found'}", err=True)
        for warning in result.explanation.get("warnings", []):
            typer.echo(f"note: {warning}", err=True)
        if not result.results:
            typer.echo("no results: the store is empty", err=True)
        width = len(str(len(result.results)))
        for rank, hit in enumerate(result.results, start=1):
            typer.echo(f"{rank:>{width}}  {hit.score:.4f}  {printable(hit.path)}")

    hints = typing.get_type_hints(search)
    fixed = [p.replace(annotation=hints[p.name]) for p in inspect.signature(search).parameters.values()
             if p.kind is not inspect.Parameter.VAR_KEYWORD]
    declared = param_options()
    search.__signature__ = inspect.Signature(fixed + declared)  # typer reads the options from the signature
    search.__annotations__ = {p.name: p.annotation for p in fixed + declared}
    app.command("search", epilog='Example: cir search --store photos.cir --item-id 12 --text "the same but at night" '
                '--strategy sum -k 5')(search)
