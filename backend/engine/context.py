"""What a running step, provisioner or post-processor sees: the build context and its UI."""

from __future__ import annotations

import os
import shutil
import threading
from typing import TYPE_CHECKING, Any, Callable

from ..sdk.cancel import CancelToken
from .events import EventBus
from .masking import StreamMask
from .private import PrivateTemp, create_exclusive

if TYPE_CHECKING:
    from .ledger import Ledger


class StageUI:
    """Output of one stage. Text is masked for secrets, then published as events.

    ``say``/``error`` are Packer's ``==>`` lines; ``stdout``/``stderr`` carry
    command output (many lines at once is cheaper: pass a list). Each stream is
    masked as a whole, so a secret printed over several lines, or cut where a long
    line is split into pieces, is still found: what could be the start of one is
    held back until the next lines show whether it is (``flush`` releases it).
    """

    def __init__(self, bus: EventBus, build: str, stage: int, mask: Callable[[str], str]):
        self.bus = bus
        self.build = build
        self.stage = stage
        self.mask = mask
        self._streams: dict[str, StreamMask] = {}
        self._lock = threading.Lock()

    def _emit(self, stream: str, lines: list[str], partial: bool = False) -> None:
        if not lines:
            return
        with self._lock:
            sm = self._streams.get(stream)
            if sm is None:
                sm = self._streams[stream] = StreamMask(self.mask)
            out, unfinished = sm.feed(lines, partial)
            if out:
                self._publish(stream, out, unfinished)

    def _publish(self, stream: str, lines: list[str], unfinished: bool) -> None:
        if unfinished:  # the last line goes on in the next event (a piece of a long line)
            self.bus.publish("output", build=self.build, stage=self.stage, stream=stream,
                             lines=lines, partial=True)
        else:
            self.bus.publish("output", build=self.build, stage=self.stage, stream=stream,
                             lines=lines)

    def flush(self) -> None:
        """Publish what was held back (the stage or command is over)."""
        with self._lock:
            for stream, sm in self._streams.items():
                if sm.holding:
                    out, unfinished = sm.flush()
                    if out:
                        self._publish(stream, out, unfinished)

    def say(self, text: str) -> None:
        self._emit("ui", text.rstrip().split("\n"))

    def error(self, text: str) -> None:
        self._emit("ui-error", text.rstrip().split("\n"))

    def stdout(self, lines: list[str] | str) -> None:
        self._emit("stdout", [lines] if isinstance(lines, str) else lines)

    def stderr(self, lines: list[str] | str) -> None:
        self._emit("stderr", [lines] if isinstance(lines, str) else lines)

    def output(self, stream: str, lines: list[str], partial: bool = False) -> None:
        """Callback shape used by communicators: ``stream`` is "stdout" or "stderr";
        ``partial``: the last line is a piece of a long line that goes on."""
        self._emit(stream, lines, partial)

    output.accepts_partial = True  # type: ignore[attr-defined]

    def progress(self, message: str, current: float | None = None, total: float | None = None) -> None:
        self.bus.publish(
            "progress", build=self.build, stage=self.stage, message=self.mask(message),
            current=current, total=total,
        )


class BuildContext:
    """The state bag of one build (Packer's multistep state, typed a little)."""

    def __init__(
        self,
        *,
        bus: EventBus,
        build_name: str,
        build_type: str,
        cancel: CancelToken,
        ledger: Ledger | None,
        options: Any,
        template_path: str,
        user_vars: dict[str, str],
        mask: Callable[[str], str],
        run_id: str,
        ask: Callable[[str, str, list[str]], str] | None = None,
        temp: PrivateTemp | None = None,
    ):
        self.bus = bus
        self.build_name = build_name
        self.build_type = build_type
        self.cancel = cancel
        self.ledger = ledger
        self.options = options
        self.template_path = template_path
        self.user_vars = user_vars
        self.mask = mask
        self.run_id = run_id
        self.ask = ask
        #: the run's private temp directory; a context made outside a session (a plugin
        #: test) has its own, removed when the context goes
        self.temp = temp if temp is not None else PrivateTemp(None, run_id)
        self.state: dict[str, Any] = {}
        self.communicator: Any = None
        self.generated_data: dict[str, Any] = {}
        self.instance_id: str | None = None
        self.ui: StageUI = StageUI(bus, build_name, 0, mask)
        self.secrets: list[str] = []
        self._lock = threading.Lock()
        #: how to get into a machine that was kept (``docker exec -it ID sh``)
        self.access_hint: str = ""

    # -- secrets --------------------------------------------------------------
    def add_secret(self, value: str) -> None:
        """Mask ``value`` in every later line of output, log, event and history row."""
        if value and len(value) >= 3:
            self.secrets.append(value)

    # -- temp files tracked in the ledger -----------------------------------------
    def temp_dir(self, prefix: str = "kiln-") -> str:
        """A 0700 directory in the run's private temp directory, recorded in the ledger
        before it exists."""
        path = self.temp.new_name(prefix)
        if self.ledger is not None:
            self.ledger.record("tempdir", path, build=self.build_name)
        os.mkdir(path, 0o700)
        return path

    def temp_file(self, prefix: str = "kiln-", suffix: str = "", content: bytes | None = None, mode: int = 0o600) -> str:
        """A file with ``content`` in the run's private temp directory, recorded in the
        ledger before it exists, created exclusively (never through a planted name)."""
        from ..sdk.process import SPAWN_LOCK

        path = self.temp.new_name(prefix, suffix)
        if self.ledger is not None:
            self.ledger.record("tempfile", path, build=self.build_name)
        with SPAWN_LOCK:  # no child may be forked while the file is open for writing
            create_exclusive(path, content, mode)
        return path

    def remove_temp(self, path: str) -> None:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            try:
                os.remove(path)
            except OSError:
                pass
        if self.ledger is not None:
            self.ledger.release_ident(path)
