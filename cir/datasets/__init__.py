"""Benchmark loaders, one module per format; each returns an :class:`cir.datasets.task.EvalTask`."""

from cir.datasets.circo import load_circo
from cir.datasets.cirr import load_cirr
from cir.datasets.csv_triplets import load_triplets
from cir.datasets.fashioniq import load_fashioniq
from cir.datasets.text2image import load_text2image

__all__ = ["load_circo", "load_cirr", "load_fashioniq", "load_text2image", "load_triplets"]
