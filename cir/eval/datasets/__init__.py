"""Benchmark loaders, one module per format; each returns an :class:`cir.eval.task.EvalTask`."""

from cir.eval.datasets.circo import load_circo
from cir.eval.datasets.cirr import load_cirr
from cir.eval.datasets.csv_triplets import load_triplets
from cir.eval.datasets.fashioniq import load_fashioniq
from cir.eval.datasets.text2image import load_text2image

__all__ = ["load_circo", "load_cirr", "load_fashioniq", "load_text2image", "load_triplets"]
