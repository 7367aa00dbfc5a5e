"""What a captioner says about a picture of the offline world: its style and the objects it holds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SceneCaption:
    """What the captioner read in one picture."""

    style: str  # one of the config's styles
    objects: tuple[str, ...]  # object names, vocabulary order

    def text(self) -> str:
        from cir.scenes.captions import canonical_caption

        return canonical_caption(list(self.objects), self.style) if self.objects else _style_only(self.style)


def _style_only(style: str) -> str:
    from cir.scenes.render import STYLE_PHRASES

    return f"{STYLE_PHRASES[style]} nothing"
