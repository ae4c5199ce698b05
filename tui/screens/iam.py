"""i: the least-privilege IAM policy of the selected template (``kiln iam policy``)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class IamPolicyScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    IamPolicyScreen { align: center middle; }
    IamPolicyScreen > VerticalScroll {
        width: 120; max-width: 95%; height: auto; max-height: 95%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    IamPolicyScreen Static { width: 100%; }
    """
    BINDINGS = [
        Binding("escape,q,i", "dismiss", "Close", show=True),
        Binding("c", "copy", "Copy the policy JSON", show=True),
    ]

    def __init__(self, name: str, explain: str, policy: str) -> None:
        super().__init__()
        self.template_name = name
        self.explain = explain
        self.policy = policy

    def compose(self):
        with VerticalScroll():
            yield Static(Text(f"IAM policy for {self.template_name}", style="bold"))
            yield Static(Text("Why each permission (kiln iam policy -explain):", style="italic"))
            yield Static(Text(self.explain), id="iam-explain")
            yield Static(Text("The policy (c copies it; kiln iam policy prints it):",
                              style="italic"))
            yield Static(Text(self.policy), id="iam-policy")

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.policy)
        self.app.notify("Copied the IAM policy.", timeout=3)
