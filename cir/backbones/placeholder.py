"""The placeholder word of injected-token queries (Pic2Word), in a module of its own so that declaring a strategy
imports no model code."""

PLACEHOLDER = "*"  # the word whose input embedding is replaced by an injected vector
