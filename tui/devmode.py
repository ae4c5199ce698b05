"""The dashboard's dev mode (d): ``kiln dev`` for the selected docker template, its runs
shown as builds in the Builds pane.

Each run is a session registered with the app like a build (mode ``dev``), so its stages
show ``cached`` for the provisioners reused and run live for the rest; which files changed
is a notification and the first line of the next run's output. d again on the template,
or quitting the dashboard, stops it and removes the container.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from ..backend.api import DevLoop, describe_changes


class DashboardDev(DevLoop):
    def __init__(self, app: Any, path: str, only: tuple[str, ...] = ()):
        from ..backend.api import Options

        opts = Options(on_error="cleanup", only=only, vars=dict(app.vars),
                       var_files=app.var_files)
        super().__init__(path, opts, out=self._note)
        self.app = app
        self.thread: threading.Thread | None = None
        self.last_change = ""

    def _note(self, text: str) -> None:
        text = text.removeprefix("==> dev: ")
        try:
            self.app.call_from_thread(self.app.notify, text, title="dev", timeout=4)
        except RuntimeError:  # the app is gone
            pass

    def start(self) -> None:
        self.thread = threading.Thread(target=self.loop, name="kiln-dev", daemon=True)
        self.thread.start()

    def stop_and_wait(self, timeout: float = 60) -> None:
        self.stop()
        if self.thread is not None:
            self.thread.join(timeout)

    def changed(self, paths: set[str]) -> None:
        import os

        base = self.path if os.path.isdir(self.path) else os.path.dirname(self.path)
        self.last_change = describe_changes(paths, os.path.abspath(base))
        self._note(f"changed: {self.last_change}; building again")

    def watching(self, inputs: Any) -> None:
        self._note(f"watching {len(inputs)} input(s); save one to rerun from it (d stops)")

    def build_once(self) -> int:
        from ..backend.api import Session, load_template
        from ..backend.template.errors import TemplateError
        from .messages import SessionRecord

        self.runs += 1
        try:
            tpl = load_template(self.path, self.options, evaluate_data=True)
            session = Session(tpl, self.options)
        except (TemplateError, OSError) as e:
            self._note(f"cannot build: {e}")
            return 1
        session.on_question = None
        rec = SessionRecord(uuid.uuid4().hex[:8], session, self.path, "dev",
                            self.last_change)
        self.app.call_from_thread(self.app._register_session, rec)
        rec.unsubscribe = self.app.bridge.attach(rec.sid, session.bus)
        session.start()
        while session.wait(0.2) is None:
            if self.quit.is_set():
                session.cancel("dev mode stopped")
        return session.result.exit_code if session.result is not None else 1
