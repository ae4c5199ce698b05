"""Plugin tests' factory: a BuildContext wired to an event list, and config decoding."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kiln.backend.engine.context import BuildContext
from kiln.backend.engine.events import EventBus
from kiln.backend.sdk.cancel import CancelToken
from kiln.backend.template.decode import ConfigProblems, Decoder
from kiln.backend.template.source import Loc, from_plain


class Run:
    """A BuildContext wired to an event list, plus a reader for what it printed."""

    def __init__(
        self,
        build_name: str = "null",
        build_type: str = "null",
        run_id: str = "run-1",
        *,
        force: bool = False,
        ledger: Any = None,
        user_vars: dict[str, str] | None = None,
        template_path: str = "/tmp/t.json",
    ):
        self.bus = EventBus(run_id)
        self.events: list = []
        self.bus.subscribe(self.events.append)
        self.ledger = ledger
        self.ctx = BuildContext(
            bus=self.bus, build_name=build_name, build_type=build_type, cancel=CancelToken(),
            ledger=ledger, options=SimpleNamespace(force=force, on_error="cleanup"),
            template_path=template_path, user_vars={} if user_vars is None else user_vars,
            mask=lambda s: s, run_id=run_id,
        )

    def lines(self, stream: str) -> list[str]:
        return [line for e in self.events if e.type == "output" and e.data["stream"] == stream
                for line in e.data["lines"]]


def masking_context(build_name: str, cancel: CancelToken | None = None) -> BuildContext:
    """A BuildContext whose mask hides what was registered with add_secret."""
    holder: dict[str, BuildContext] = {}

    def mask(text: str) -> str:
        for s in sorted(holder["ctx"].secrets, key=len, reverse=True):
            text = text.replace(s, "<sensitive>")
        return text

    ctx = BuildContext(
        bus=EventBus(), build_name=build_name, build_type="null", cancel=cancel or CancelToken(),
        ledger=None, options=None, template_path="", user_vars={}, mask=mask, run_id="test",
    )
    holder["ctx"] = ctx
    return ctx


def decode(cls, config: dict):
    d = Decoder()
    obj = d.decode(cls.Config, from_plain(config, Loc("t.json")))
    if d.problems:
        raise ConfigProblems([(p.loc.path, p.message) for p in d.problems])
    return obj


def plugin(cls, config: dict):
    return cls(decode(cls, config))


def problems_of(cls, config: dict) -> str:
    with pytest.raises(ConfigProblems) as exc:
        decode(cls, config)
    return str(exc.value)
