"""Run one build: builder steps, one stage per provisioner, then post-processors.

Cleanups are registered before each step runs and are called in reverse order
(an ExitStack), so the step that failed is cleaned up too. On a provisioner
failure the on-error policy decides what happens next; with ``ask`` the build
pauses with the machine still up and waits for retry / skip / clean up / abort,
answered from a terminal prompt or through :meth:`Session.answer`.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Protocol

from ..sdk.cancel import CancelToken
from ..sdk.communicator import CommunicatorError
from ..sdk.plugin import PROVISION, Artifact, Cancelled, StepError
from .chain import PostProcessorChain
from .context import BuildContext, StageUI
from .ledger import BuildLedger
from .masking import Masker
from .onerror import OnErrorPolicy
from .prepare import PreparedBuild, PreparedProvisioner
from .provision import ProvisionerStages
from .schema import Status
from .stages import CHOICES, BuildFailed, BuildResult, Stage, _artifact_dict, _message, _status_of  # noqa: F401 - the runner's vocabulary, public here

if TYPE_CHECKING:
    from ..template.model import Template
    from .events import EventBus
    from .ledger import Ledger
    from .prepare import Options
    from .private import PrivateTemp


class RunnerSession(Protocol):
    """What a build runner needs of the run it belongs to (a Session is one): the runner
    reaches its session only through this."""

    bus: EventBus
    options: Options
    template: Template
    ledger: Ledger | None
    run_id: str
    temp: PrivateTemp

    def reload_provisioner(self, prepared: PreparedBuild, running: list[PreparedProvisioner],
                           failed: int) -> Any:
        """Re-read the template for a retry; what the retry runs (a retry.Reload)."""

    def question_asked(self, runner: BuildRunner, question: dict) -> None: ...

    def log_crash(self, build: str, lines: list[str]) -> None: ...


class BuildRunner(ProvisionerStages, OnErrorPolicy, PostProcessorChain):
    """One build: its builder steps (here), provisioner stages (provision.py), on-error
    policy (onerror.py) and post-processor chains (chain.py)."""

    def __init__(self, session: RunnerSession, prepared: PreparedBuild, cancel: CancelToken):
        self.session = session
        self.prepared = prepared
        self.name = prepared.name
        self.cancel = cancel
        self.bus = session.bus
        self.options = session.options
        self.stages: list[Stage] = []
        self.prov_stages: list[Stage] = []  # the provisioners' stages, in the order they run
        self.result = BuildResult(prepared.name)
        self._abort = False  # keep the machine: skip cleanups
        self._provision_error: str | None = None
        self._answer_lock = threading.Condition()
        self._answer: str | None = None
        self.pending_question: dict[str, Any] | None = None
        self.cache: Any = None  # provcache.BuildCache when this build's results are cached
        secrets = list(session.template.sensitive_values) + list(prepared.secrets)
        self.masker = Masker(secrets)
        self.ctx = BuildContext(
            bus=self.bus,
            build_name=prepared.definition.build_name,
            build_type=prepared.type,
            cancel=cancel,
            ledger=BuildLedger(session.ledger, prepared.name) if session.ledger is not None else None,
            options=self.options,
            template_path=session.template.path,
            user_vars=dict(session.template.user_vars),
            mask=self.masker,
            run_id=session.run_id,
            ask=self.ask,
            temp=session.temp,
        )
        # plugins add secrets while the build runs (ctx.add_secret)
        self.masker.extra = self.ctx.secrets

    # -- secrets --------------------------------------------------------------------
    def mask(self, text: str) -> str:
        return self.masker(text)

    # -- stages ---------------------------------------------------------------------
    def _plan(self, steps: list) -> None:
        idx = 0
        for item in steps:
            if item is PROVISION:
                for p in self.prepared.provisioners:
                    st = self._provisioner_stage(idx, p)
                    self.stages.append(st)
                    self.prov_stages.append(st)
                    idx += 1
            else:
                self.stages.append(Stage(idx, item.name, "builder", ref=item))
                idx += 1
        dev = getattr(self.options, "dev", None) is not None
        for chain in self.prepared.chains if not dev else []:  # kiln dev stops before them
            for pp in chain:
                d = pp.definition
                label = d.type if d.name == d.type else f"{d.name} ({d.type})"
                self.stages.append(Stage(idx, label, "post-processor", ref=pp,
                                         source=f"{os.path.basename(d.loc.file)}:{d.loc.line}"))
                idx += 1

    def _provisioner_stage(self, idx: int, p: PreparedProvisioner) -> Stage:
        d = p.definition
        return Stage(idx, self.mask(p.label), "provisioner", ref=p,
                     source=f"{os.path.basename(d.loc.file)}:{d.loc.line}")

    def _stage_ui(self, stage: Stage) -> StageUI:
        ui = StageUI(self.bus, self.name, stage.index, self.masker)
        self.ctx.ui = ui
        return ui

    def _start(self, stage: Stage) -> StageUI:
        stage.status = Status.RUNNING
        stage.started = time.time()
        self.bus.publish("stage.started", build=self.name, stage=stage.index, name=stage.name, kind=stage.kind)
        return self._stage_ui(stage)

    def _finish(self, stage: Stage, status: str, error: str = "") -> None:
        self.ctx.ui.flush()  # output held back for masking belongs before the stage's end
        stage.status = status
        stage.duration = time.time() - stage.started if stage.started else 0.0
        stage.error = self.mask(error)
        self.bus.publish(
            "stage.finished", build=self.name, stage=stage.index, name=stage.name, kind=stage.kind,
            status=status, duration=round(stage.duration, 6), error=stage.error,
        )

    def _add_stage(self, name: str, kind: str, ref: Any = None) -> Stage:
        st = Stage(len(self.stages), name, kind, ref=ref)
        self.stages.append(st)
        self.bus.publish("stage.added", build=self.name, **st.to_dict())
        return st

    # -- run ------------------------------------------------------------------------
    def run(self) -> BuildResult:
        start = time.time()
        builder = self.prepared.builder
        try:
            steps = builder.steps(self.ctx)
            if getattr(self.options, "dev", None) is not None and PROVISION in steps:
                steps = steps[:steps.index(PROVISION) + 1]  # kiln dev: no commit or export
        except Exception as e:  # a builder that cannot even plan its steps
            steps = []
            self.result.status = Status.CRASHED
            self.result.error = f"{type(e).__name__}: {e}"
        self._plan(steps)
        from .provcache import for_build  # the provisioner cache (docker builds)

        self.cache = self.ctx.cache = for_build(self)
        self.bus.publish(
            "build.started", build=self.name, build_type=self.prepared.type,
            stages=[s.to_dict() for s in self.stages],
        )
        artifact = None
        if self.result.status != Status.CRASHED:
            artifact = self._run_builder(steps)
        if artifact is not None and self.result.status == Status.RUNNING \
                and getattr(self.options, "dev", None) is None:
            self._run_post_processors(artifact)
        if self.result.status == Status.RUNNING:
            self.result.status = Status.SUCCEEDED
        for st in self.stages:
            if st.status == Status.PENDING:
                st.status = Status.SKIPPED
                self.bus.publish("stage.finished", build=self.name, stage=st.index, name=st.name,
                                 kind=st.kind, status=Status.SKIPPED, duration=0.0, error="")
        self.ctx.ui.flush()
        self.result.duration = time.time() - start
        self.result.error = self.mask(self.result.error)
        self.result.access_hint = self.ctx.access_hint
        if self.result.status == Status.SUCCEEDED:
            for a in self.result.artifacts:
                self.bus.publish("artifact", build=self.name, **_artifact_dict(a, self.mask))
        self.bus.publish(
            "build.finished", build=self.name, status=self.result.status,
            duration=round(self.result.duration, 6), error=self.result.error,
            kept=self.result.kept, access_hint=self.result.access_hint,
            stages=[{"name": s.name, "kind": s.kind, "status": s.status,
                     "duration": round(s.duration, 6)} for s in self.stages],
        )
        return self.result

    def _run_builder(self, steps: list) -> Artifact | None:
        self.result.status = Status.RUNNING
        stack = ExitStack()
        error: BaseException | None = None
        stage_of = {id(s.ref): s for s in self.stages if s.kind == "builder"}
        try:
            for item in steps:
                if item is PROVISION:
                    self._provision(stack)
                    continue
                stage = stage_of[id(item)]
                self.cancel.check()
                if self.options.debug:
                    self.ask(f"Pausing before step '{stage.name}'. Press enter to continue.", "",
                             ["continue"], stage)
                ui = self._start(stage)
                stack.callback(self._cleanup_step, item, stage)
                try:
                    item.run(self.ctx)
                except BaseException as e:
                    self._finish(stage, _status_of(e), _message(e))
                    if not isinstance(e, (Cancelled, BuildFailed)):
                        ui.error(_message(e))
                    raise
                self._finish(stage, Status.SUCCEEDED)
            builder_artifact = self.prepared.builder.artifact(self.ctx)
        except BaseException as e:  # noqa: BLE001 - every failure ends in cleanup
            error = e
            builder_artifact = None
        keep = self._keep_machine(error)
        if error is not None:
            self._set_failure(error)
        elif getattr(self.options, "dev", None) is not None:
            # kiln dev keeps the machine up after the provisioners; it closes the stack later
            self.dev_kept = True
            self.options.dev(self, stack.pop_all())
            return builder_artifact
        if keep:
            self._keep(stack)
        else:
            self.result.status = Status.CANCELLING if isinstance(error, Cancelled) else self.result.status
            if isinstance(error, Cancelled):
                self.bus.publish("build.status", build=self.name, status=Status.CANCELLING)
            stack.close()
            if isinstance(error, Cancelled):
                self.result.status = Status.CANCELLED
        return builder_artifact if error is None else None


    def _set_failure(self, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            self.result.status = Status.CANCELLED
            self.result.error = "cancelled"
        elif isinstance(error, (StepError, BuildFailed, CommunicatorError)):
            self.result.status = Status.FAILED
            self.result.error = str(error)
        else:
            self.result.status = Status.CRASHED
            self.result.error = f"Kiln crashed: {type(error).__name__}: {error}"
            self.ctx.ui.error(self.result.error)
            self.session.log_crash(self.name, traceback.format_exception(error))

    def _cleanup_step(self, step, stage: Stage) -> None:
        self._stage_ui(stage)
        try:
            step.cleanup(self.ctx)
        except Exception as e:  # report, and keep cleaning up the rest
            self.ctx.ui.error(f"Cleanup of {stage.name} failed: {_message(e)}")
        self.ctx.ui.flush()


