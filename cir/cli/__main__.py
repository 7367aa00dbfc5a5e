"""``python -m cir.cli ...``: the same CLI as the ``cir`` script (for checkouts without an installed entry point)."""

from cir.cli import run

run()
