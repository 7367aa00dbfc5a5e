"""``python -m cir.cli ...``: the same CLI as the ``cir`` script (tests start subprocesses this way)."""

from cir.cli import run

if __name__ == "__main__":
    run()
