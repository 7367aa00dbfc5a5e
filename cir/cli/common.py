"""Options and helpers shared by several commands."""

from __future__ import annotations

import typer

from cir.backbones.spec import DEFAULT_BACKBONE, REAL_PHOTOS_EXAMPLE

BACKBONE_HELP = f"model spec: openclip:ARCH/TAG, hf:REPO_OR_DIR, cir:PATH or cir:demo (default {DEFAULT_BACKBONE})"


def demo_backbone_notice(spec: str) -> None:
    """Said once when the offline demo backbone meets the user's own folder."""
    if spec == DEFAULT_BACKBONE:
        typer.echo(
            f"note: {DEFAULT_BACKBONE} only knows the offline scenes world (OpenMoji objects); "
            f"for real photos pass e.g. --backbone {REAL_PHOTOS_EXAMPLE}",
            err=True,
        )


def strategy_help(prefix: str) -> str:
    """``prefix`` and the registered strategies with their one-line descriptions (for --strategy)."""
    from cir.compose.registry import strategy_specs

    return prefix + "; ".join(f"{s.name}: {s.description}" for s in strategy_specs())


def printable_path(path: str) -> str:
    """``path`` on one line, unambiguously: control characters (newline, tab, ...), backslashes and bytes that are
    not UTF-8 (surrogate-escaped) are written as Python-style escapes (``\\n``, ``\\\\``, ``\\xff``); everything else,
    accented letters included, is printed as is. A line-per-result output stays one line per result."""
    out = []
    for ch in path:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\x{code:02x}"))
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF or ch in "\u2028\u2029":
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)
