"""Ingest: the first steps of the pipeline. ``sources`` says which files, ``decode`` turns a file into pixels (or a
typed reason it cannot), ``hashing`` is the one SHA-256 of content. Turning pixels into vectors is :mod:`cir.encode`."""
