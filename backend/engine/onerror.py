"""The on-error policy of a build as step wrappers, after Packer's commonsteps abort/ask
wrappers: each provisioner stage runs inside the wrapper of the build's policy, which on a
failure cleans up, aborts and keeps the machine, asks and waits for retry / skip / clean up /
abort, or runs the error-cleanup provisioner. Also: re-planning a retry after the template
was re-read, and the question/answer of a paused build."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from ..sdk.plugin import Cancelled
from .context import StageUI
from .schema import Status
from .stages import CHOICES, BuildFailed, Stage, _message


class ProvisionerFailed(Exception):
    """A provisioner stage failed (its stage still running): the wrapper decides what next."""

    def __init__(self, stage: Stage, message: str):
        super().__init__(message)
        self.stage = stage
        self.message = message


class OnErrorStep:
    """Wraps one provisioner stage; on its failure the build ends and the machine is cleaned
    up (on-error cleanup, the default). Subclasses apply the other policies."""

    def __init__(self, runner: Any, pos: int):
        self.runner = runner
        self.pos = pos

    def run(self, data: dict) -> int:
        """Run the wrapped stage; returns the position of the next one."""
        try:
            return self.runner._run_provisioner_stage(self.pos, data)
        except ProvisionerFailed as failure:
            return self.failed(failure.stage, failure.message)

    def failed(self, stage: Stage, msg: str) -> int:
        return self.fail(stage, msg)

    def fail(self, stage: Stage, msg: str, abort: bool = False) -> int:
        """End the build with the stage failed; ``abort`` keeps the machine."""
        r = self.runner
        r._finish(stage, Status.FAILED, msg)
        r._provision_error = msg
        if abort:
            r._abort = True
        raise BuildFailed(msg, keep=abort) from None

    @staticmethod
    def keeps_machine(error: BaseException) -> bool:
        """Whether a build that ended with ``error`` keeps its machine (skips cleanups)."""
        return False


class AbortStep(OnErrorStep):
    """on-error abort: stop at once and keep the machine as it is, even when cancelled."""

    def failed(self, stage: Stage, msg: str) -> int:
        return self.fail(stage, msg, abort=True)

    @staticmethod
    def keeps_machine(error: BaseException) -> bool:
        return True


class CleanupProvisionerStep(OnErrorStep):
    """on-error run-cleanup-provisioner: run the error-cleanup provisioner, then keep the
    machine (a cancelled build is cleaned up)."""

    @staticmethod
    def keeps_machine(error: BaseException) -> bool:
        return not isinstance(error, Cancelled)


class AskStep(OnErrorStep):
    """on-error ask: pause with the machine up until the user picks retry (the template read
    again), skip, cleanup or abort."""

    def failed(self, stage: Stage, msg: str) -> int:
        from .retry import FROM_CHANGED, MATCHED

        r, pos = self.runner, self.pos
        try:
            choice = r.ask(f"Provisioner {stage.name!r} failed", msg, list(CHOICES), stage)
            reload = None
            while True:
                if choice == "retry":
                    running = [s.ref for s in r.prov_stages]
                    reload = r.session.reload_provisioner(r.prepared, running, pos)
                    if reload.error:  # the build stays paused with the located error
                        choice = r.ask("The template could not be read again: fix it, then "
                                       "retry", reload.error, list(CHOICES), stage)
                        continue
                    plan = reload.plan
                    if not plan.automatic:
                        choice = r.ask(plan.prompt(), plan.detail(),
                                       plan.choices() + list(CHOICES), stage,
                                       details=plan.details())
                        continue
                    choice = MATCHED
                if choice in (MATCHED, FROM_CHANGED) and reload is not None and reload.plan:
                    return r._replan(pos, reload, choice)
                if choice == "skip":
                    r._finish(stage, Status.SKIPPED, msg)
                    r.ctx.ui.say("Skipped; carrying on with the next stage.")
                    return pos + 1
                break
        except Cancelled:  # cancelled while waiting for an answer
            r._finish(stage, Status.CANCELLED, msg)
            raise
        return self.fail(stage, msg, abort=choice == "abort")


#: the wrapper of each -on-error mode; any other mode cleans up
ON_ERROR_STEPS: dict[str, type[OnErrorStep]] = {
    "cleanup": OnErrorStep, "abort": AbortStep, "ask": AskStep,
    "run-cleanup-provisioner": CleanupProvisionerStep,
}


def on_error_step(mode: str | None) -> type[OnErrorStep]:
    return ON_ERROR_STEPS.get(mode or "cleanup", OnErrorStep)


class OnErrorPolicy:
    """Part of BuildRunner (build.py): its attributes are the runner's."""

    @property
    def on_error_step(self) -> type[OnErrorStep]:
        return on_error_step(self.options.on_error)

    def _keep_machine(self, error: BaseException | None) -> bool:
        return error is not None and (self._abort or self.on_error_step.keeps_machine(error))

    def _keep(self, stack: ExitStack) -> None:
        """Leave the machine as it is (on-error abort): no cleanup, ledger marked kept."""
        if self.options.on_error == "run-cleanup-provisioner" and not self._abort:
            self._error_cleanup_provisioner()
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
            st.status, st.duration, st.error, st.started = Status.PENDING, 0.0, "", 0.0
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

    def _error_cleanup_provisioner(self) -> None:
        """Runs (as a cleanup) when provisioning failed: Packer's error-cleanup-provisioner.
        Its failure becomes the build's error (it raises nothing: the cleanups after it
        must still run, and the build has failed already)."""
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
            self._finish(stage, Status.FAILED, _message(e))
            self.result.error = f"Cleanup failed: {_message(e)}. Original Provisioning error: {self._provision_error}"
            return
        self._finish(stage, Status.SUCCEEDED)

    # -- asking -----------------------------------------------------------------------
    def ask(self, prompt: str, error: str, choices: list[str], stage: Stage | None = None,
            details: dict[str, str] | None = None) -> str:
        """Pause the build until the user picks one of ``choices`` (or cancel -> cleanup).
        ``details`` says in a line what each choice would do, when the word is not enough."""
        st = stage or self._current_stage()
        if st is not None:
            prev = st.status
            st.status = Status.PAUSED
            self.bus.publish("stage.status", build=self.name, stage=st.index, status=Status.PAUSED)
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
            if st.status == Status.RUNNING:
                return st
        return None

