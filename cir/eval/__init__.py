"""Evaluation: metrics over arrays (metrics), benchmark loaders (datasets), the runner (runner) and reports
(report); images are embedded through the encoder's cache (cir.encode.cache). The CLI is cir.cli.eval_cmd."""
