"""The breakpoint provisioner: pause the build until the user says to continue.

The engine's ``ctx.ask`` blocks until the user answers in the terminal or the
dashboard (or the build is cancelled); the machine stays up meanwhile, so the
user can log in and look around (``access_hint`` says how).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...sdk.config import opt
from ...sdk.plugin import Cancelled, Provisioner, StepError

if TYPE_CHECKING:
    from ...sdk.context import BuildContext, StageUI


@dataclass
class BreakpointConfig:
    note: str = opt("", doc="text shown when the build pauses here")
    disable: bool = opt(False, doc="skip this breakpoint (the build does not pause)")


class BreakpointProvisioner(Provisioner):
    type_name = "breakpoint"
    Config = BreakpointConfig
    needs_communicator = False

    config: BreakpointConfig

    def describe(self) -> str:
        return self.config.note

    def provision(self, ctx: BuildContext, ui: StageUI, comm: Any, data: dict[str, Any]) -> None:
        note = self.config.note
        if self.config.disable:
            if note:
                ui.say(f'Breakpoint provisioner with note "{note}" disabled; continuing...')
            else:
                ui.say("Breakpoint provisioner disabled; continuing...")
            return
        if note:
            ui.say(f'Pausing at breakpoint provisioner with note "{note}".')
        else:
            ui.say("Pausing at breakpoint provisioner.")
        ask = getattr(ctx, "ask", None)
        if ask is None:
            raise StepError("breakpoint needs an interactive session")
        hint = getattr(ctx, "access_hint", "") or (comm.access_hint() if comm is not None else "")
        detail = f"Log in with: {hint}" if hint else ""
        prompt = (
            "Press enter to continue."
            if not note
            else f"Breakpoint: {note}. Press enter to continue."
        )
        try:
            ask(prompt, detail, ["continue"])
        except (StepError, Cancelled):
            raise
        except Exception as e:  # noqa: BLE001 - a broken prompt fails this provisioner only
            raise StepError(f"Error asking for input: {e}") from e
        ctx.cancel.check()
