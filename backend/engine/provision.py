"""A build's provisioner stages: one stage per provisioner, each with its retries and
timeout, through the build's communicator."""

from __future__ import annotations

import threading
import traceback
from contextlib import ExitStack

from ..sdk.cancel import CancelToken
from ..sdk.communicator import CommunicatorError
from ..sdk.plugin import Cancelled, StepError
from .context import StageUI
from .onerror import ProvisionerFailed
from .prepare import PreparedProvisioner
from .schema import Status
from .stages import BuildFailed, _message


class ProvisionerStages:
    """Part of BuildRunner (build.py): its attributes are the runner's."""

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
            pos = self.on_error_step(self, pos).run(data)  # onerror.py: the policy's wrapper

    def _run_provisioner_stage(self, pos: int, data: dict) -> int:
        """Run the provisioner at ``pos``; returns the position to go on from, or raises
        ProvisionerFailed for the on-error wrapper around it to decide."""
        stage = self.prov_stages[pos]
        prov: PreparedProvisioner = stage.ref
        ui = self._start(stage)
        try:
            self._run_provisioner(prov, ui, data)
        except Cancelled as e:
            self._finish(stage, Status.CANCELLED, "cancelled")
            raise e
        except Exception as e:  # noqa: BLE001
            msg = _message(e)
            status = Status.FAILED if isinstance(e, (StepError, CommunicatorError, BuildFailed)) else Status.CRASHED
            if status == Status.CRASHED:
                self.session.log_crash(self.name, traceback.format_exception(e))
                msg = f"{type(e).__name__}: {e}"
                ui.error(msg)
            if self.prepared.definition.provisioners and prov.definition.continue_on_error:
                ui.error(f"Provisioner failed with \"{msg}\", but continue_on_error is set; continuing.")
                self._finish(stage, Status.FAILED, msg)
                return pos + 1
            raise ProvisionerFailed(stage, msg) from None
        if self.cache is not None:
            self.cache.stored(pos, stage)
        self._finish(stage, Status.SUCCEEDED)
        return pos + 1

    def _run_provisioner(self, prov: PreparedProvisioner, ui: StageUI, data: dict) -> None:
        d = prov.definition
        if d.pause_before:
            from ..template.golang import format_duration

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
        from ..template.golang import format_duration

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

