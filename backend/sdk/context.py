"""What a plugin sees while it runs: the build context, the stage UI and the resource ledger.

These are protocols: the engine makes the objects (kiln.backend.engine.context), a plugin
only uses them, and a plugin test may hand in any object of the same shape.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from .cancel import CancelToken


class StageUI(Protocol):
    """Output of one stage, masked for secrets before anyone sees it.

    ``say``/``error`` are Packer's ``==>`` lines; ``stdout``/``stderr`` carry command output
    (a list of lines at once is cheaper); ``output`` is the callback shape communicators take.
    """

    def say(self, text: str) -> None: ...

    def error(self, text: str) -> None: ...

    def stdout(self, lines: list[str] | str) -> None: ...

    def stderr(self, lines: list[str] | str) -> None: ...

    def output(self, stream: str, lines: list[str], partial: bool = False) -> None: ...

    def progress(self, message: str, current: float | None = None,
                 total: float | None = None) -> None: ...

    def flush(self) -> None: ...


class ResourceLedger(Protocol):
    """Where a step records what it creates, *before* creating it, so that ``kiln cleanup``
    can remove it after a killed run (with the reaper the plugin declares for ``kind``)."""

    def record(self, kind: str, ident: str, build: str = "",
               data: dict[str, Any] | None = None) -> int: ...

    def update(self, entry_id: int, ident: str | None = None,
               data: dict[str, Any] | None = None) -> None: ...

    def release(self, entry_id: int) -> None:
        """The resource is gone (the step's cleanup removed it)."""

    def release_ident(self, ident: str) -> None: ...


class BuildContext(Protocol):
    """The state of one build (Packer's multistep state bag, typed a little)."""

    build_name: str
    build_type: str
    cancel: CancelToken
    #: None when nothing is recorded (a plugin test)
    ledger: ResourceLedger | None
    #: the run's options (on-error, debug, force...); read-only for plugins
    options: Any
    template_path: str
    user_vars: dict[str, str]
    run_id: str
    #: masks every secret known so far in a text
    mask: Callable[[str], str]
    #: ask the user a question (title, text, choices) and get the answer; None when no one can
    ask: Callable[[str, str, list[str]], str] | None
    #: what steps hand to later steps (Packer's state bag)
    state: dict[str, Any]
    #: the connected communicator once the connect step ran
    communicator: Any
    #: ``{{ build `X` }}`` values for provisioners
    generated_data: dict[str, Any]
    instance_id: str | None
    ui: StageUI
    #: how to get into a machine that was kept (``docker exec -it ID sh``)
    access_hint: str

    def add_secret(self, value: str) -> None:
        """Mask ``value`` in every later line of output, log, event and history row."""

    def temp_dir(self, prefix: str = "kiln-") -> str:
        """A new 0700 directory in the run's private temp directory, in the ledger."""

    def temp_file(self, prefix: str = "kiln-", suffix: str = "", content: bytes | None = None,
                  mode: int = 0o600) -> str:
        """A new file in the run's private temp directory, created exclusively, in the ledger."""

    def remove_temp(self, path: str) -> None: ...
