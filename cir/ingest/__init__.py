"""Ingest: the first steps of the pipeline. ``sources`` says which files, ``decode`` turns a file into pixels (or a
reason it cannot), ``pipeline`` decodes in parallel with the model and yields batches in order."""
