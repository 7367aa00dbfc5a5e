"""The ``cir`` command line: a thin typer layer over the library. ``main(argv)`` runs in-process (tests)."""

from __future__ import annotations

import sys

import typer

from cir.errors import CirError

# each module exposes register(app); a new command group is one module and one line here
COMMAND_MODULES = (
    "cir.cli.index_cmd",
    "cir.cli.search_cmd",
    "cir.cli.train_cmd",
    "cir.cli.demo_cmd",
    "cir.cli.scenes_cmd",
    "cir.cli.eval_cmd",
    "cir.cli.edits_cmd",
    "cir.cli.serve_cmd",
)


def build_app() -> typer.Typer:
    import importlib

    app = typer.Typer(
        name="cir",
        help="Composed image retrieval: index images, search them with a reference image plus a text.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in COMMAND_MODULES:  # every module is listed on purpose: a missing one is an error, not a skip
        importlib.import_module(name).register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (without the program name); returns the exit code."""
    app = build_app()
    try:
        app(args=argv, prog_name="cir", standalone_mode=False)
    except CirError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except (typer.Exit,) as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except Exception as exc:  # click usage errors carry their own exit code and message
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


def run() -> None:
    sys.exit(main(sys.argv[1:]))
