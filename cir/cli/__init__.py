"""The ``cir`` command line: a thin typer layer over the library. ``main(argv)`` runs in-process (tests)."""

from __future__ import annotations

import sys

import typer

from cir.errors import CirError

# each module exposes register(app); a new command group is one module and one line here
COMMAND_MODULES = (
    "cir.cli.index_cmd",
    "cir.cli.search_cmd",
    "cir.cli.check_cmd",
    "cir.cli.train_cmd",
    "cir.cli.demo_cmd",
    "cir.cli.scenes_cmd",
    "cir.cli.eval_cmd",
    "cir.cli.edits_cmd",
    "cir.cli.serve_cmd",
    "cir.cli.models_cmd",
    "cir.cli.info_cmd",
)


def build_app() -> typer.Typer:
    import importlib

    app = typer.Typer(
        name="cir",
        help="Composed image retrieval: index images, search them with a reference image plus a text.",
        epilog="Example: cir index ~/Pictures --store photos.cir && cir search --store photos.cir --item-id 0 "
               "--text \"the same but in red\"   (cir COMMAND --help: each command with its own example)",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                     help="print the version of cir and exit"),
    ) -> None:
        """Composed image retrieval: index images, search them with a reference image plus a text."""

    for name in COMMAND_MODULES:  # every module is listed on purpose: a missing one is an error, not a skip
        importlib.import_module(name).register(app)
    return app


def _print_version(value: bool) -> None:
    if value:
        from cir.version import __version__

        typer.echo(f"cir {__version__}")
        raise typer.Exit(0)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (without the program name); returns the exit code.

    Usage errors (an unknown command or option, a missing or out-of-range value) print the usage line, the hint and
    the error, never a traceback, and return 2. An interrupt (Ctrl-C) returns 130 and says what was kept and how to
    continue when the command knows (an :class:`~cir.errors.Interrupted`). typer bundles its own click
    (``typer._click``): its exception classes are the ones raised here, not those of the ``click`` package. The
    command is invoked here rather than through typer's ``main``, which turns an interrupt into a silent exit."""
    from typer import _click
    from typer.main import get_command

    from cir.errors import Interrupted

    command = get_command(build_app())
    try:
        with command.make_context("cir", list(sys.argv[1:] if argv is None else argv)) as ctx:
            returned = command.invoke(ctx)  # a command's return value; typer.Exit carries codes
    except CirError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except _click.exceptions.NoArgsIsHelpError as exc:  # `cir` alone: the help, on stdout
        typer.echo(exc.ctx.get_help())
        return 2
    except _click.exceptions.ClickException as exc:  # usage errors: usage line, hint, message
        exc.show()
        return exc.exit_code
    except typer.Exit as exc:  # --version, --help, a command's own exit code
        return exc.exit_code
    except Interrupted as exc:
        typer.echo(f"\ninterrupted: {exc}", err=True)
        return 130
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("\ninterrupted", err=True)
        return 130
    return returned if isinstance(returned, int) else 0


def run() -> None:
    sys.exit(main(sys.argv[1:]))
