"""Command palette (ctrl+p): every dashboard action by name, plus "Build <template>"."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Iterator, Protocol

from rich.style import Style
from rich.text import Text
from textual.command import DiscoveryHit, Hit, Hits, Provider

from . import keys


class PaletteHost(Protocol):
    """What the palette needs of the dashboard (the KilnApp)."""

    keymap: dict[str, str]

    def run_binding(self, binding_id: str) -> Any: ...

    def template_entries(self) -> list[Any]: ...

    def build_path(self, path: str) -> Any: ...

ACTIONS = (
    ("build", "Build the selected template"),
    ("provision-null", "Run the template's provisioners on the null builder…"),
    ("postprocess-file", "Run the template's post-processors on the file builder…"),
    ("retry", "Retry the failed provisioner (re-read the template)"),
    ("skip", "Skip the failed provisioner"),
    ("cleanup", "Clean up the failed build"),
    ("keep", "Keep the failed build's machine and show how to get into it"),
    ("cancel", "Cancel the selected build"),
    ("zoom", "Zoom the focused pane (again: back)"),
    ("edit", "Edit the template in $EDITOR"),
    ("output-search", "Search the output"),
    ("output-filter", "Filter the output"),
    ("output-follow", "Follow the output"),
    ("output-scope", "Output: toggle stage / whole build"),
    ("output-copy", "Copy the output to the clipboard"),
    ("output-save", "Save the stage's log to a file"),
    ("templates-rescan", "Look for templates again"),
    ("help", "Show the keys"),
    ("quit", "Quit"),
)


class KilnCommands(Provider):
    def _commands(self) -> Iterator[tuple[str, Callable[[], object], str]]:
        app: PaletteHost = self.app  # type: ignore[assignment]
        for binding_id, title in ACTIONS:
            spec = keys.spec(binding_id)
            key = app.keymap.get(binding_id, spec.key).split(",")[0]
            yield title, partial(app.run_binding, binding_id), f"{spec.help} [{key}]"
        for entry in app.template_entries():
            yield (
                f"Build {entry.name}",
                partial(app.build_path, entry.path),
                "Build every build of it",
            )

    async def discover(self) -> Hits:
        for title, cb, help_text in self._commands():
            yield DiscoveryHit(Text(title), cb, text=title, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, cb, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, _highlight(matcher, query, title), cb, text=title, help=help_text)


def _highlight(matcher, query: str, title: str) -> Text:
    """Matched letters underlined. (Matcher.highlight reads the title as markup, and
    template names may contain brackets.)"""
    text = Text(title)
    try:
        _score, offsets = matcher.fuzzy_search.match(query, title)
    except Exception:  # the fuzzy search is private API; plain text is fine
        return text
    for o in offsets:
        if 0 <= o < len(title) and not title[o].isspace():
            text.stylize(Style(bold=True, underline=True), o, o + 1)
    return text
