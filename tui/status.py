"""Status -> glyph, word and theme colour: the one place every pane asks.

Every state shows a glyph and a word as well as a colour, so it reads the same
with NO_COLOR and for colour-blind users. Colours are theme variable names
(``success``, ``error``, ``warning``...), resolved against the running app's
theme, never literal colours.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

from rich.style import Style
from rich.text import Text


class Look(NamedTuple):
    glyph: str
    word: str
    colour: str  # a theme variable name


LOOKS: dict[str, Look] = {
    "pending": Look("○", "pending", "foreground-muted"),
    "running": Look("●", "running", "accent"),
    "succeeded": Look("✓", "succeeded", "success"),
    "failed": Look("✗", "failed", "error"),
    "skipped": Look("↷", "skipped", "foreground-muted"),
    "cached": Look("≡", "cached", "success"),
    "cancelling": Look("⊘", "cancelling", "warning"),
    "cancelled": Look("⊘", "cancelled", "warning"),
    "crashed": Look("‼", "crashed", "error"),
    "paused": Look("‖", "paused", "warning"),
    "kept": Look("⚑", "kept", "warning"),
    # templates
    "validating": Look("…", "checking", "foreground-muted"),
    "valid": Look("✓", "valid", "success"),
    "invalid": Look("✗", "invalid", "error"),
}

#: statuses after which nothing more happens to a build or stage
FINAL = frozenset({"succeeded", "failed", "skipped", "cancelled", "crashed", "kept", "cached"})
#: statuses of a build that is still alive (threads running, maybe cleaning up)
LIVE = frozenset({"pending", "running", "cancelling", "paused"})


def look(status: str) -> Look:
    return LOOKS.get(status, Look("?", status or "unknown", "foreground-muted"))


def colour(variables: Mapping[str, str], name: str):
    """A theme variable as a Rich colour, alpha blended onto the theme background."""
    from textual.color import Color

    try:
        c = Color.parse(variables.get(name) or variables.get("foreground") or "white")
        if c.a < 1:
            bg = Color.parse(variables.get("background") or "black")
            c = bg.blend(c.with_alpha(1.0), c.a)
        return c.rich_color
    except Exception:  # a theme without the variable: no colour beats a crash
        return None


def style(variables: Mapping[str, str], status: str, bold: bool = False) -> Style:
    return Style(color=colour(variables, look(status).colour), bold=bold)


def theme_style(variables: Mapping[str, str], name: str, **kw) -> Style:
    return Style(color=colour(variables, name), **kw)


def status_text(variables: Mapping[str, str], status: str, word: bool = True) -> Text:
    """``✓ succeeded`` in the status colour (a Rich Text: never parsed as markup)."""
    lk = look(status)
    return Text(f"{lk.glyph} {lk.word}" if word else lk.glyph, style=style(variables, status))


def plain(status: str) -> str:
    lk = look(status)
    return f"{lk.glyph} {lk.word}"
