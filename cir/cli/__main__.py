"""``python -m cir.cli ...`` runs the CLI (tests start subprocesses this way)."""

from cir.cli import run

if __name__ == "__main__":
    run()
