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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from backend.plugins.base import PROVISION, Artifact, Cancelled, StepError
from backend.plugins.communicators.base import CommunicatorError

from .cancel import CancelToken
from .context import BuildContext, StageUI
from .ledger import BuildLedger
from .masking import Masker
from .prepare import PreparedBuild, PreparedProvisioner

if TYPE_CHECKING:
    from .session import Session

#: the choices offered when a provisioner fails with -on-error=ask
CHOICES = ("retry", "skip", "cleanup", "abort")


@dataclass
class Stage:
    index: int
    name: str
    kind: str  # builder | provisioner | post-processor | cleanup
    status: str = "pending"
    started: float = 0.0
    duration: float = 0.0
    error: str = ""
    ref: Any = None
    source: str = ""  # template file:line of a provisioner / post-processor

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "kind": self.kind, "status": self.status,
                "source": self.source}


class BuildFailed(Exception):
    """The build failed; ``keep`` is True when resources are kept on purpose."""

    def __init__(self, message: str, keep: bool = False):
        super().__init__(message)
        self.keep = keep


@dataclass
class BuildResult:
    name: str
    status: str = "pending"
    error: str = ""
    duration: float = 0.0
    artifacts: list[Artifact] = field(default_factory=list)
    kept: bool = False
    access_hint: str = ""
    log_path: str = ""


class BuildRunner:
    def __init__(self, session: Session, prepared: PreparedBuild, cancel: CancelToken):
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
        stage.status = "running"
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
            self.result.status = "crashed"
            self.result.error = f"{type(e).__name__}: {e}"
        self._plan(steps)
        from .provcache import for_build  # the provisioner cache (docker builds)

        self.cache = self.ctx.cache = for_build(self)
        self.bus.publish(
            "build.started", build=self.name, build_type=self.prepared.type,
            stages=[s.to_dict() for s in self.stages],
        )
        artifact = None
        if self.result.status != "crashed":
            artifact = self._run_builder(steps)
        if artifact is not None and self.result.status == "running" \
                and getattr(self.options, "dev", None) is None:
            self._run_post_processors(artifact)
        if self.result.status == "running":
            self.result.status = "succeeded"
        for st in self.stages:
            if st.status == "pending":
                st.status = "skipped"
                self.bus.publish("stage.finished", build=self.name, stage=st.index, name=st.name,
                                 kind=st.kind, status="skipped", duration=0.0, error="")
        self.ctx.ui.flush()
        self.result.duration = time.time() - start
        self.result.error = self.mask(self.result.error)
        self.result.access_hint = self.ctx.access_hint
        if self.result.status == "succeeded":
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
        self.result.status = "running"
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
                self._finish(stage, "succeeded")
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
            self.result.status = "cancelling" if isinstance(error, Cancelled) else self.result.status
            if isinstance(error, Cancelled):
                self.bus.publish("build.status", build=self.name, status="cancelling")
            stack.close()
            if isinstance(error, Cancelled):
                self.result.status = "cancelled"
        return builder_artifact if error is None else None

    def _keep_machine(self, error: BaseException | None) -> bool:
        if error is None:
            return False
        if self._abort:
            return True
        mode = self.options.on_error
        if isinstance(error, Cancelled):
            return mode == "abort"
        return mode in ("abort", "run-cleanup-provisioner")

    def _keep(self, stack: ExitStack) -> None:
        """Leave the machine as it is (on-error abort): no cleanup, ledger marked kept."""
        if self.options.on_error == "run-cleanup-provisioner" and not self._abort:
            try:
                self._error_cleanup_provisioner()
            except BuildFailed:
                pass
        stack.pop_all()
        self.result.kept = True
        if self.session.ledger is not None:
            self.session.ledger.keep(build=self.name)
        ui = self.ctx.ui
        hint = self.ctx.access_hint
        if not hint and self.ctx.communicator is not None:
            try:
                hint = self.ctx.communicator.access_hint()
            except Exception:
                hint = ""
        self.ctx.access_hint = hint
        kept = []
        if self.session.ledger is not None:
            kept = [e for e in self.session.ledger.entries(self.session.run_id)
                    if e.build == self.name and e.kind not in ("tempfile", "tempdir")]
        if not kept and not hint:
            ui.error("Build failed; cleanup skipped (on-error " + (self.options.on_error or "abort") + ").")
            return
        ui.error("Build failed; the machine is kept as it is (no cleanup):")
        for e in kept:
            ui.error(f"  {e.kind} {e.ident}")
        if hint:
            ui.error(f"Get into it with: {hint}")
        ui.error("When you are done, remove it with: kiln cleanup -all")

    def _set_failure(self, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            self.result.status = "cancelled"
            self.result.error = "cancelled"
        elif isinstance(error, (StepError, BuildFailed, CommunicatorError)):
            self.result.status = "failed"
            self.result.error = str(error)
        else:
            self.result.status = "crashed"
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

    # -- provisioners -----------------------------------------------------------------
    def _provision(self, stack: ExitStack) -> None:
        comm = self.ctx.communicator
        data = dict(self.ctx.generated_data)
        data.setdefault("ID", self.ctx.instance_id or "ERR_ID_NOT_IMPLEMENTED_BY_BUILDER")
        data["PackerRunUUID"] = self.session.run_id
        for k in ("PackerHTTPIP", "PackerHTTPPort", "PackerHTTPAddr"):
            data.setdefault(k, f"ERR_{k[6:].upper()}_NOT_IMPLEMENTED_BY_BUILDER".replace("HTTP", "HTTP_"))
        if comm is not None:
            try:
                data.update({k: v for k, v in comm.connection_data().items() if v is not None})
            except Exception:
                pass
        self.ctx.generated_data = data
        stack.callback(self._error_cleanup_provisioner)
        pos = self.cache.skip_cached() if self.cache is not None else 0
        while pos < len(self.prov_stages):  # a retry may re-plan the rest, or go back
            self.cancel.check()
            pos = self._run_provisioner_stage(pos, data)

    def _run_provisioner_stage(self, pos: int, data: dict) -> int:
        """Run the provisioner at ``pos``; returns the position to go on from."""
        stage = self.prov_stages[pos]
        prov: PreparedProvisioner = stage.ref
        ui = self._start(stage)
        try:
            self._run_provisioner(prov, ui, data)
        except Cancelled as e:
            self._finish(stage, "cancelled", "cancelled")
            raise e
        except Exception as e:  # noqa: BLE001
            msg = _message(e)
            status = "failed" if isinstance(e, (StepError, CommunicatorError, BuildFailed)) else "crashed"
            if status == "crashed":
                self.session.log_crash(self.name, traceback.format_exception(e))
                msg = f"{type(e).__name__}: {e}"
                ui.error(msg)
            if self.prepared.definition.provisioners and prov.definition.continue_on_error:
                ui.error(f"Provisioner failed with \"{msg}\", but continue_on_error is set; continuing.")
                self._finish(stage, "failed", msg)
                return pos + 1
            return self._after_failure(pos, stage, msg)
        if self.cache is not None:
            self.cache.stored(pos, stage)
        self._finish(stage, "succeeded")
        return pos + 1

    def _after_failure(self, pos: int, stage: Stage, msg: str) -> int:
        """The on-error policy; with ask, the user's answers until the build goes on or ends."""
        from .retry import FROM_CHANGED, MATCHED

        try:
            choice = self._on_failure(stage, msg)
            reload = None
            while True:
                if choice == "retry":
                    running = [s.ref for s in self.prov_stages]
                    reload = self.session.reload_provisioner(self.prepared, running, pos)
                    if reload.error:  # the build stays paused with the located error
                        choice = self.ask("The template could not be read again: fix it, then "
                                          "retry", reload.error, list(CHOICES), stage)
                        continue
                    plan = reload.plan
                    if not plan.automatic:
                        choice = self.ask(plan.prompt(), plan.detail(),
                                          plan.choices() + list(CHOICES), stage,
                                          details=plan.details())
                        continue
                    choice = MATCHED
                if choice in (MATCHED, FROM_CHANGED) and reload is not None and reload.plan:
                    return self._replan(pos, reload, choice)
                if choice == "skip":
                    self._finish(stage, "skipped", msg)
                    self.ctx.ui.say("Skipped; carrying on with the next stage.")
                    return pos + 1
                break
        except Cancelled:  # cancelled while waiting for an answer
            self._finish(stage, "cancelled", msg)
            raise
        self._finish(stage, "failed", msg)
        self._provision_error = msg
        if choice == "abort":
            self._abort = True
        raise BuildFailed(msg, keep=choice == "abort") from None

    def _replan(self, pos: int, reload: Any, choice: str) -> int:
        """Go on as the re-read template says: the provisioners from the chosen one on replace
        the rest of the plan; returns the position to run next."""
        plan = reload.plan
        if self.cache is not None:  # what runs now is not what the keys describe
            self.cache.stop()
        start = plan.start_of(choice)
        keep = plan.kept(choice)
        runs = [reload.prepared[j] for j in range(start, len(plan.new)) if j in reload.prepared]
        old = self.prov_stages
        first = self.stages.index(old[0])
        last = self.stages.index(old[-1])
        stages: list[Stage] = list(old[:keep])
        for k, p in enumerate(runs):
            i = keep + k
            st = old[i] if i < len(old) else self._provisioner_stage(0, p)
            fresh = self._provisioner_stage(st.index, p)
            st.name, st.ref, st.source = fresh.name, p, fresh.source
            st.status, st.duration, st.error, st.started = "pending", 0.0, "", 0.0
            stages.append(st)
        self.prov_stages = stages
        self.prepared.provisioners = [s.ref for s in stages]
        self.stages[first:last + 1] = stages
        for i, st in enumerate(self.stages):
            st.index = i
        note = self.mask(plan.note_for(choice, self.session.template.path))
        self.bus.publish(
            "build.replanned", build=self.name, stage=stages[keep].index, reason=note,
            retried=choice == "matched", stages=[s.to_dict() for s in self.stages],
        )
        StageUI(self.bus, self.name, None, self.mask).say(note)
        return keep

    def _on_failure(self, stage: Stage, msg: str) -> str:
        mode = self.options.on_error
        if mode != "ask":
            return "cleanup" if mode in ("cleanup", "") else "abort" if mode == "abort" else "cleanup-keep"
        return self.ask(f"Provisioner {stage.name!r} failed", msg, list(CHOICES), stage)

    def _run_provisioner(self, prov: PreparedProvisioner, ui: StageUI, data: dict) -> None:
        d = prov.definition
        if d.pause_before:
            from backend.template.golang import format_duration

            ui.say(f"Pausing {format_duration(d.pause_before)} before the next provisioner...")
            self.cancel.sleep(d.pause_before)
        if self.options.debug:
            self.ask("Pausing before the next provisioner. Press enter to continue.", "", ["continue"])
        attempts = max(0, prov.max_retries) + 1
        first_error: BaseException | None = None
        for attempt in range(attempts):
            try:
                self._run_once(prov, ui, data, timeout=d.timeout if not d.pause_before else 0)
                return
            except Cancelled:
                raise
            except Exception as e:  # noqa: BLE001
                if first_error is None:
                    first_error = e
                left = attempts - attempt - 1
                if left <= 0:
                    break
                ui.error(f'Provisioner failed with "{_message(e)}", retrying with {left} trie(s) left')
                self.cancel.sleep(min(2.0 ** attempt, 30.0))
        if prov.max_retries:
            ui.error("retry limit reached.")
        assert first_error is not None
        raise first_error

    def _run_once(self, prov: PreparedProvisioner, ui: StageUI, data: dict, timeout: float) -> None:
        comm = self.ctx.communicator
        if comm is None and getattr(prov.plugin, "needs_communicator", True):
            raise StepError("no communicator found for provisioners: the builder connected to nothing")
        if not timeout:
            prov.plugin.provision(self.ctx, ui, comm, data)
            return
        from backend.template.golang import format_duration

        ui.say(f"Setting a {format_duration(timeout)} timeout for the next provisioner...")
        token = CancelToken(self.cancel)
        timer = threading.Timer(timeout, token.cancel, args=("timeout",))
        timer.daemon = True
        saved = self.ctx.cancel
        self.ctx.cancel = token
        timer.start()
        try:
            prov.plugin.provision(self.ctx, ui, comm, data)
        except Cancelled:
            if token.reason == "timeout" and not self.cancel.cancelled:
                ui.error("Cancelling provisioner after a timeout...")
                raise StepError(f"provisioner timed out after {format_duration(timeout)}") from None
            raise
        finally:
            timer.cancel()
            self.ctx.cancel = saved

    def _error_cleanup_provisioner(self) -> None:
        """Runs (as a cleanup) when provisioning failed: Packer's error-cleanup-provisioner."""
        if self._provision_error is None or self._abort:
            return
        if self.options.on_error == "abort" or not self.prepared.builder.error_cleanup:
            return
        ui = self.ctx.ui
        ui.say("Provisioning step had errors: Running the cleanup provisioner, if present...")
        prov = self.prepared.error_cleanup
        if prov is None:
            return
        stage = self._add_stage(self.mask(f"error-cleanup: {prov.label}"), "provisioner", prov)
        ui = self._start(stage)
        try:
            self._run_once(prov, ui, self.ctx.generated_data, timeout=prov.definition.timeout)
        except Exception as e:  # noqa: BLE001
            self._finish(stage, "failed", _message(e))
            self.result.error = f"Cleanup failed: {_message(e)}. Original Provisioning error: {self._provision_error}"
            raise BuildFailed(self.result.error) from None
        self._finish(stage, "succeeded")

    # -- asking -----------------------------------------------------------------------
    def ask(self, prompt: str, error: str, choices: list[str], stage: Stage | None = None,
            details: dict[str, str] | None = None) -> str:
        """Pause the build until the user picks one of ``choices`` (or cancel -> cleanup).
        ``details`` says in a line what each choice would do, when the word is not enough."""
        st = stage or self._current_stage()
        if st is not None:
            prev = st.status
            st.status = "paused"
            self.bus.publish("stage.status", build=self.name, stage=st.index, status="paused")
        question = {"build": self.name, "stage": st.index if st else None, "prompt": prompt,
                    "error": self.mask(error), "choices": choices}
        if details:
            question["details"] = {k: self.mask(v) for k, v in details.items()}
        with self._answer_lock:
            self._answer = None
            self.pending_question = question
        self.bus.publish("paused", **question)
        self.session.question_asked(self, question)
        unregister = self.cancel.on_cancel(lambda: self.answer("cleanup" if "cleanup" in choices else choices[0]))
        try:
            with self._answer_lock:
                while self._answer is None:
                    self._answer_lock.wait(0.5)
                answer = self._answer
                self.pending_question = None
        finally:
            unregister()
        if self.cancel.cancelled:
            raise Cancelled(self.cancel.reason or "cancelled")
        if st is not None:
            st.status = prev
            self.bus.publish("stage.status", build=self.name, stage=st.index, status=prev)
        self.bus.publish("answered", build=self.name, stage=st.index if st else None, choice=answer)
        return answer

    def answer(self, choice: str) -> bool:
        with self._answer_lock:
            if self.pending_question is None or self._answer is not None:
                return False
            if choice not in self.pending_question["choices"]:
                return False
            self._answer = choice
            self._answer_lock.notify_all()
            return True

    def _current_stage(self) -> Stage | None:
        for st in self.stages:
            if st.status == "running":
                return st
        return None

    # -- post-processors (Packer's chain algorithm) -------------------------------------
    def _run_post_processors(self, builder_artifact: Artifact) -> None:
        chains = self.prepared.chains
        artifacts: list[Artifact] = []
        errors: list[str] = []
        keep_original = not chains
        stages = {id(s.ref): s for s in self.stages if s.kind == "post-processor"}
        build_ui = self.ctx.ui
        for chain in chains:
            prior = builder_artifact
            first = True
            abandoned = False
            for pp in chain:
                stage = stages[id(pp)]
                if abandoned:
                    continue
                if self.cancel.cancelled:
                    errors.append("context canceled")
                    abandoned = True
                    continue
                d = pp.definition
                label = d.type if d.name == d.type else f"{d.name} (type {d.type})"
                ui = self._start(stage)
                # a build-level line (no stage: Packer prints it without the post-processor's
                # name) published after stage.started, so it sits under that stage's header
                StageUI(self.bus, self.name, None, self.mask).say(f"Running post-processor: {label}")
                try:
                    art = pp.plugin.post_process(self.ctx, ui, prior)
                except Cancelled:
                    self._finish(stage, "cancelled", "cancelled")
                    errors.append("context canceled")
                    abandoned = True
                    continue
                except Exception as e:  # noqa: BLE001
                    msg = _message(e)
                    if not isinstance(e, (StepError, CommunicatorError)):
                        self.session.log_crash(self.name, traceback.format_exception(e))
                        msg = f"{type(e).__name__}: {e}"
                    ui.error(f"Post-processor failed: {msg}")
                    self._finish(stage, "failed", msg)
                    errors.append(f"Post-processor failed: {msg}")
                    abandoned = True
                    continue
                self._finish(stage, "succeeded")
                if art is None:
                    abandoned = True
                    continue
                dkeep, force = pp.plugin.default_keep
                keep = dkeep
                user = d.keep_input_artifact
                if user is not None:
                    keep = user if not (dkeep and user is False and force) else dkeep
                if first:
                    keep_original = keep_original or keep
                elif keep:
                    artifacts.append(prior)
                elif prior is not art:
                    try:
                        prior.destroy()
                    except Exception as e:  # noqa: BLE001
                        errors.append(f"Failed cleaning up prior artifact: {e}; pp is {d.type}")
                prior = art
                first = False
            if not abandoned:
                artifacts.append(prior)
        if keep_original:
            artifacts.insert(0, builder_artifact)
        else:
            try:
                builder_artifact.destroy()
            except Exception as e:  # noqa: BLE001
                errors.append(f"Error destroying builder artifact: {e}")
        if errors:
            self.result.status = "failed"
            self.result.error = "; ".join(errors)
            return
        self.result.artifacts = artifacts
        self.ctx.ui = build_ui



def _artifact_dict(a: Artifact, mask: Callable[[str], str]) -> dict[str, Any]:
    return {"builder_id": a.builder_id, "id": mask(a.id()), "files": a.files(), "string": mask(a.string())}


def _status_of(e: BaseException) -> str:
    if isinstance(e, Cancelled):
        return "cancelled"
    if isinstance(e, (StepError, CommunicatorError, BuildFailed)):
        return "failed"
    return "crashed"


def _message(e: BaseException) -> str:
    text = str(e)
    return text if text else type(e).__name__
