"""The networks the learned strategies run (trained by :mod:`cir.train`, which imports them from here)."""
