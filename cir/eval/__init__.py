"""Evaluation: metrics over arrays (metrics), benchmark loaders (datasets), the embedding cache (embed_cache),
the runner (runner) and reports (report). The CLI is cir.cli.eval_cmd."""
