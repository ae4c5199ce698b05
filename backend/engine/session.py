"""A session: one run of a template's builds, in parallel threads, with one event bus.

The CLI and the dashboard both drive builds through this class: ``start()``
runs the builds in the background, ``cancel()`` stops them (with cleanup),
``answer(build, choice)`` answers a paused build (retry / skip / cleanup /
abort), and every observable thing arrives on ``bus``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from ..sdk.cancel import CancelToken
from ..template.errors import TemplateError
from ..template.model import Template
from .build import BuildResult, BuildRunner
from .events import EventBus
from .ledger import Ledger
from .prepare import Options, PreparedBuild, PreparedProvisioner, Preparer, select_builds
from .private import PrivateTemp, makedirs_private
from .registry import load_template
from .schema import Status


def default_state_dir(template_path: str) -> str:
    base = template_path if os.path.isdir(template_path) else os.path.dirname(os.path.abspath(template_path))
    return os.path.join(base, ".kiln")


class StateDirError(Exception):
    """Where Kiln keeps its state (history, logs, the ledger) cannot be used."""


def ledger_state_dir_name() -> str:
    return os.environ.get("KILN_STATE_DIR") or "~/.local/state/kiln"


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e)


@dataclass
class Reload:
    """A retry's re-read of the template: where the failed provisioner went (``plan``) and
    the provisioners it may run, prepared, by position; or why it cannot go on."""

    plan: Any = None  # retry.RetryPlan
    error: str = ""
    prepared: dict[int, PreparedProvisioner] = field(default_factory=dict)


@dataclass
class RunResult:
    exit_code: int
    results: dict[str, BuildResult] = field(default_factory=dict)
    interrupted: bool = False
    duration: float = 0.0


class Session:
    def __init__(
        self,
        template: Template,
        options: Options,
        *,
        builds: list[PreparedBuild] | None = None,
        bus: EventBus | None = None,
        run_id: str | None = None,
        history: bool = True,
    ):
        self.template = template
        self.options = options
        self.run_id = run_id or str(uuid.uuid4())
        self.bus = bus or EventBus(self.run_id)
        self.bus.run_id = self.run_id
        self.cancel_token = CancelToken()
        self.state_dir = options.state_dir or default_state_dir(template.path)
        try:
            self.ledger = Ledger(self.run_id, on_change=self._ledger_event)
        except (OSError, sqlite3.Error) as e:
            raise StateDirError(
                f"cannot open the resource ledger in {ledger_state_dir_name()}: {_reason(e)} "
                "(KILN_STATE_DIR chooses another directory)") from e
        #: every temporary file of the run goes in this private directory
        self.temp = PrivateTemp(self.ledger, self.run_id)
        self.runners: dict[str, BuildRunner] = {}
        self.result: RunResult | None = None
        self.on_question: Callable[[BuildRunner, dict], None] | None = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._crashed_outside: set[str] = set()
        self.warnings: list[str] = []
        self.held = False  # kiln dev keeps this run's machines after it (close_held)
        if builds is None:
            builds = self.prepare()
        self.builds = builds
        self.log_dir = os.path.join(self.state_dir, "logs", self.run_id)
        self._history = None
        self._logs = None
        if history:
            from .history import History
            from .logs import BuildLogs

            try:
                makedirs_private(self.log_dir)
            except OSError as e:
                self.ledger.close()
                raise StateDirError(f"cannot use the state directory {self.state_dir}: "
                                    f"{_reason(e)} (-state-dir chooses another)") from e
            self._logs = BuildLogs(self.log_dir, [b.name for b in builds])
            self.bus.subscribe(self._logs, replay=True)
            try:
                self._history = History(os.path.join(self.state_dir, "history.db"))
                self._history.attach(self.bus, template.path, self._logs.paths)
            except Exception as e:  # history is a convenience; never fail a build for it
                self.warnings.append(f"history is not recorded: {e}")

    # -- preparing ------------------------------------------------------------------
    def prepare(self) -> list[PreparedBuild]:
        selected = select_builds(self.template, self.options.only, self.options.except_)
        prep = Preparer(self.template, self.options)
        builds = prep.prepare(selected)
        self.warnings += prep.warnings
        if prep.problems:
            raise TemplateError(prep.problems)
        return builds

    def reload_provisioner(self, prepared: PreparedBuild, running: list[PreparedProvisioner],
                           failed: int) -> Reload:
        """Re-read the template from disk for a retry and find the failed provisioner in it
        by identity (see :mod:`.retry`); the provisioners a retry may run come prepared."""
        from .prepare import COMMON_GENERATED
        from .retry import MATCHED, describe_error, plan_retry

        runner = self.runners.get(prepared.name)
        try:
            fresh = load_template(self.template.path, self.options, evaluate_data=True)
            try:
                build = fresh.build(prepared.definition.name)
            except KeyError:
                raise TemplateError(f"build {prepared.definition.name!r} is no longer in "
                                    f"{self.template.path}") from None
            new = list(build.provisioners)
            plan = plan_retry([p.definition for p in running], new, failed, build)
            starts = [plan.start_of(c) for c in ([MATCHED] if plan.automatic else plan.choices())]
            if not starts:
                return Reload(plan, error=plan.detail() + "\nNo provisioner is left to run: "
                              "skip, clean up or keep the machine, or edit the template again.")
            prep = Preparer(fresh, self.options)
            keys = COMMON_GENERATED + tuple(getattr(type(prepared.builder), "generated_keys", ()))
            ready: dict[int, PreparedProvisioner] = {}
            for j in range(min(starts), len(new)):
                pp = prep.prepare_provisioner(build, new[j], keys)
                if pp is not None:
                    ready[j] = pp
            if prep.problems:
                raise TemplateError(prep.problems)
        except TemplateError as e:
            return Reload(None, error=describe_error(e))
        if runner is not None:  # what the edited template made secret stays masked
            from ..template.decode import secret_values

            for v in list(fresh.sensitive_values) + [
                x for pp in ready.values() for x in secret_values(pp.plugin.config)
            ]:
                if v:
                    runner.ctx.add_secret(v)
        return Reload(plan, prepared=ready)

    # -- running --------------------------------------------------------------------
    def start(self) -> None:
        """Run in a background thread; ``wait()`` for the result."""
        self._thread = threading.Thread(target=self.run, name=f"kiln-session-{self.run_id[:8]}", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """The result once the run is over (``run.finished`` delivered, history written);
        None while it is still going."""
        if not self._done.wait(timeout):
            return None
        return self.result

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def run(self) -> RunResult:
        """Run every build; whatever happens, ``run.finished`` is the last event, the history
        row is written and ``wait()`` returns only after that."""
        start = time.time()
        crash: BaseException | None = None
        try:
            self._run_builds()
        except BaseException as e:  # noqa: BLE001 - the run must still be finished and recorded
            crash = e
        try:
            self._finish_run(start, crash)
        finally:
            self._done.set()
        return self.result  # type: ignore[return-value]

    def _run_builds(self) -> None:
        os.environ.setdefault("PACKER_RUN_UUID", self.run_id)
        self.bus.publish(
            "run.started", template=self.template.path, builds=[b.name for b in self.builds],
            build_types={b.name: b.type for b in self.builds},
            options={"on_error": self.options.on_error, "parallel_builds": self.options.parallel_builds,
                     "debug": self.options.debug, "force": self.options.force},
            log_dir=self.log_dir,
        )
        limit = self.options.parallel_builds
        if self.options.debug:
            limit = 1
        sem = threading.Semaphore(limit) if limit and limit > 0 else None
        threads = []
        for pb in self.builds:
            runner = BuildRunner(self, pb, CancelToken(self.cancel_token))
            self.runners[pb.name] = runner
        try:
            for pb in self.builds:
                if self.cancel_token.cancelled:
                    break
                runner = self.runners[pb.name]
                if sem is not None:
                    while not sem.acquire(timeout=0.2):
                        if self.cancel_token.cancelled:
                            break
                    if self.cancel_token.cancelled:
                        break
                t = threading.Thread(target=self._build_thread, args=(runner, sem),
                                     name=f"kiln-build-{pb.name}", daemon=True)
                t.start()
                threads.append(t)  # once started: joining a thread never started raises
        finally:
            for t in threads:
                t.join()

    def _finish_run(self, start: float, crash: BaseException | None) -> None:
        results = {name: r.result for name, r in self.runners.items()}
        for _name, r in results.items():
            if r.status == Status.PENDING:
                r.status = Status.CRASHED if crash is not None else Status.CANCELLED
                r.error = (f"not started: Kiln crashed: {type(crash).__name__}: {crash}"
                           if crash is not None else "not started: the run was cancelled")
        failed = any(r.status != Status.SUCCEEDED for r in results.values())
        crashed = crash is not None or bool(self._crashed_outside)
        interrupted = self.cancel_token.cancelled
        code = 1 if failed or interrupted or crashed else 0  # no build selected: nothing failed
        self.result = RunResult(code, results, interrupted, time.time() - start)
        # builds the user stopped one by one (the dashboard's cancel) make a cancelled run too
        cancelled = failed and all(r.status in (Status.SUCCEEDED, Status.CANCELLED) for r in results.values())
        status = (Status.CRASHED if crashed else Status.CANCELLED if interrupted or cancelled
                  else Status.FAILED if failed else Status.SUCCEEDED)
        # kiln dev holds a build's machine (and its shared temp dir) after the run: it
        # closes the temp directory and the ledger itself (close_held) when it removes it
        self.held = any(getattr(r, "dev_kept", False) for r in self.runners.values())
        try:
            kept = any(e.kept and e.kind in ("tempfile", "tempdir")
                       for e in self.ledger.entries(self.run_id))
            if not self.held:
                self.temp.close(keep=kept)
        except Exception as e:  # noqa: BLE001 - a temp directory must not stop the record
            self.warnings.append(f"the run's temporary directory was not removed: {e}")
        self.bus.publish("run.finished", status=status, exit_code=code,
                         duration=round(self.result.duration, 6))
        for closing in (self._logs, self._history, None if self.held else self.ledger):
            if closing is not None:
                try:
                    closing.close()
                except Exception as e:  # noqa: BLE001
                    self.warnings.append(f"closing {type(closing).__name__}: {e}")
        if self._history is not None:  # the default retention: history does not grow for ever
            from .history import default_keep, prune

            keep = default_keep()
            if keep:
                try:
                    prune(self.state_dir, keep)
                except Exception as e:  # noqa: BLE001 - a full disk must not fail the build
                    self.warnings.append(f"old runs were not pruned: {e}")

    def close_held(self) -> None:
        """After kiln dev removed the machines it held: the run's temp dir and ledger."""
        try:
            self.temp.close()
        finally:
            self.ledger.close()

    def _build_thread(self, runner: BuildRunner, sem) -> None:
        try:
            self._run_build(runner, sem)
        except BaseException as e:  # noqa: BLE001 - a bug outside the runner's own guard
            import traceback

            r = runner.result
            r.status = Status.CRASHED
            r.error = f"Kiln crashed: {type(e).__name__}: {e}"
            self._crashed_outside.add(runner.name)
            self.log_crash(runner.name, traceback.format_exception(e))
            self.bus.publish("build.finished", build=runner.name, status=Status.CRASHED,
                             duration=round(r.duration, 6), error=r.error, kept=False,
                             access_hint="", stages=[])

    def _run_build(self, runner: BuildRunner, sem) -> None:
        try:
            runner.run()
        finally:
            self._sweep_temp(runner)
            if sem is not None:
                sem.release()

    def _sweep_temp(self, runner: BuildRunner) -> None:
        """Temp files a plugin did not remove (a cancel mid-way, say) go when the build ends."""
        from .ledger import reap

        for e in self.ledger.entries(self.run_id):
            if e.build == runner.name and e.kind in ("tempfile", "tempdir") and not e.kept:
                try:
                    reap(e)
                    self.ledger.release(e.id)
                except Exception:  # noqa: BLE001 - kiln cleanup reports it later
                    pass

    # -- control --------------------------------------------------------------------
    def cancel(self, reason: str = "interrupted", build: str | None = None) -> None:
        if build is not None:
            r = self.runners.get(build)
            if r is not None:
                r.cancel.cancel(reason)
            return
        self.cancel_token.cancel(reason)

    def answer(self, build: str, choice: str) -> bool:
        r = self.runners.get(build)
        return bool(r and r.answer(choice))

    def pending_questions(self) -> list[dict[str, Any]]:
        return [r.pending_question for r in self.runners.values() if r.pending_question]

    def question_asked(self, runner: BuildRunner, question: dict) -> None:
        if self.on_question is not None:
            self.on_question(runner, question)

    def log_crash(self, build: str, lines: list[str]) -> None:
        if self._logs is not None:
            self._logs.write_raw(build, "".join(lines))

    def _ledger_event(self, action: str, build: str, kind: str, ident: str) -> None:
        self.bus.publish("resource", build=build, action=action, kind=kind, ident=ident)

    @property
    def log_paths(self) -> dict[str, str]:
        return dict(self._logs.paths) if self._logs else {}
