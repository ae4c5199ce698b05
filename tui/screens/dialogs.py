"""Small modal screens: a yes/no question, the target picker, the "cleaning up" wait."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from .. import status

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 76; max-width: 95%; height: auto; max-height: 90%;
    border: thick $primary; background: $surface; padding: 1 2;
}}
{name} .title {{ text-style: bold; margin-bottom: 1; }}
{name} Horizontal {{ height: auto; margin-top: 1; align-horizontal: right; }}
{name} Button {{ margin-left: 2; }}
"""


class ConfirmScreen(ModalScreen[bool]):
    """A question with a yes and a no button (enter: the focused one, escape: no)."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmScreen")
    BINDINGS = [Binding("escape,n", "answer(False)", "No"), Binding("y", "answer(True)", "Yes")]

    def __init__(
        self,
        title: str,
        body: str,
        yes: str,
        no: str,
        danger: bool = True,
        focus_yes: bool = True,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.yes = yes
        self.no = no
        self.danger = danger
        self.focus_yes = focus_yes

    def compose(self):
        with Vertical():
            yield Label(Text(self.title_text), classes="title")
            yield Static(Text(self.body))
            with Horizontal():
                yield Button(self.no, id="no")
                yield Button(self.yes, id="yes", variant="error" if self.danger else "primary")

    def on_mount(self) -> None:
        self.query_one("#yes" if self.focus_yes else "#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


@dataclass(frozen=True)
class TargetChoice:
    label: str
    target: Any  # backend.engine.debugruns.NullTarget
    build: str | None = None  # None: every build


class TargetPicker(ModalScreen["TargetChoice | None"]):
    """Where to run the template's provisioners on the null builder."""

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="TargetPicker")
        + """
    TargetPicker OptionList { height: auto; max-height: 12; }
    TargetPicker Select { margin-bottom: 1; }
    """
    )
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        template_name: str,
        targets: list[tuple[str, Any]],
        builds: list[str],
        build: str | None,
        notes: list[str],
    ) -> None:
        super().__init__()
        self.template_name = template_name
        self.targets = targets
        self.builds = builds
        self.build = build
        self.notes = notes

    def compose(self):
        with Vertical():
            yield Label(
                Text(f"Run the provisioners of {self.template_name} on the null builder"),
                classes="title",
            )
            if len(self.builds) > 1:
                options = [("every build's provisioners", "")] + [
                    (f"build {b}", b) for b in self.builds
                ]
                yield Select(options, value=self.build or "", allow_blank=False, id="build")
            yield Label(Text("Target:"))
            yield OptionList(
                *[Option(Text(label), id=str(i)) for i, (label, _) in enumerate(self.targets)],
                id="targets",
            )
            for n in self.notes:
                yield Static(Text(n, style="italic"))
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Run", id="run", variant="primary")

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        ol.highlighted = 0
        ol.focus()

    def _choice(self) -> TargetChoice | None:
        ol = self.query_one(OptionList)
        if ol.highlighted is None:
            return None
        label, target = self.targets[ol.highlighted]
        build = self.build
        if self.query("#build"):
            value = self.query_one("#build", Select).value
            build = value if isinstance(value, str) and value else None
        return TargetChoice(label, target, build)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self._choice())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self._choice() if event.button.id == "run" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RetryChoiceScreen(ModalScreen["str | None"]):
    """What a retry runs when the re-read template moved things around the failed
    provisioner: the matched one, from the first changed one, read again, or stay paused."""

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="RetryChoiceScreen")
        + """
    RetryChoiceScreen > Vertical { width: 100; }
    RetryChoiceScreen OptionList { height: auto; max-height: 10; margin-top: 1; }
    """
    )
    BINDINGS = [Binding("escape", "stay", "Stay paused")]

    def __init__(self, title: str, body: str, options: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.options = options  # (choice, what it does); choice "" stays paused

    def compose(self):
        with Vertical():
            yield Label(Text(self.title_text), classes="title")
            yield Static(Text(self.body))
            yield OptionList(
                *[Option(Text(text), id=f"c{i}") for i, (_c, text) in enumerate(self.options)],
                id="choices",
            )

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        ol.highlighted = 0
        ol.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        choice = self.options[event.option_index][0]
        self.dismiss(choice or None)

    def action_stay(self) -> None:
        self.dismiss(None)


class ArtifactPicker(ModalScreen["str | None"]):
    """What the post-processors of a debug run start from: a stand-in or the last build's."""

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="ArtifactPicker")
        + """
    ArtifactPicker > Vertical { width: 90; }
    ArtifactPicker OptionList { height: auto; max-height: 8; margin: 1 0; }
    """
    )
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, options: list[tuple[str, str]], note: str) -> None:
        super().__init__()
        self.title_text = title
        self.options = options
        self.note = note

    def compose(self):
        with Vertical():
            yield Label(Text(self.title_text), classes="title")
            yield Label(Text("Start from:"))
            yield OptionList(
                *[Option(Text(text), id=key) for key, text in self.options], id="artifacts"
            )
            yield Static(Text(self.note, style="italic"))

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        ol.highlighted = 0
        ol.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class WaitScreen(ModalScreen[None]):
    """Shown while quitting: the builds being cancelled and cleaned up, live."""

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="WaitScreen")
        + """
    WaitScreen #rows { height: auto; }
    """
    )
    BINDINGS = [Binding("q,ctrl+q,ctrl+c", "force", "Quit now", show=True)]

    def __init__(
        self,
        rows: Callable[[], list[tuple[str, str, str]]],
        done: Callable[[], bool],
        on_done: Callable[[], None],
        variables: Callable[[], dict],
    ) -> None:
        super().__init__()
        self._rows = rows
        self._done = done
        self._on_done = on_done
        self._vars = variables
        self._forced = False

    def compose(self):
        with Vertical():
            yield Label(Text("Cancelling the running builds and cleaning up…"), classes="title")
            yield Static(id="rows")
            yield Static(
                Text(
                    "Press q again to quit at once (what is left is listed by `kiln cleanup`).",
                    style="italic",
                )
            )

    def on_mount(self) -> None:
        self._refresh()
        self.set_interval(0.1, self._refresh)

    def _refresh(self) -> None:
        v = self._vars()
        t = Text()
        for name, st, last in self._rows():
            t.append_text(status.status_text(v, st))
            t.append(f"  {name}")
            if last:
                t.append(f"  {last[:60]}", style="dim")
            t.append("\n")
        self.query_one("#rows", Static).update(t)
        if self._done() and not self._forced:
            self._forced = True
            self._on_done()

    def action_force(self) -> None:
        self._forced = True
        self.app.force_quit = True  # type: ignore[attr-defined]  (KilnApp)
        self.app.exit(
            1,
            message="Quit without waiting for cleanup; run `kiln cleanup` to remove what is left.",
        )
