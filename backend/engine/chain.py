"""A build's post-processor chains: each chain takes the builder's artifact through its
post-processors, keeping or destroying the input artifacts as Packer does."""

from __future__ import annotations

import traceback

from ..sdk.communicator import CommunicatorError
from ..sdk.plugin import Artifact, Cancelled, StepError
from .context import StageUI
from .schema import Status
from .stages import _message


class PostProcessorChain:
    """Part of BuildRunner (build.py): its attributes are the runner's."""

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
                    self._finish(stage, Status.CANCELLED, "cancelled")
                    errors.append("context canceled")
                    abandoned = True
                    continue
                except Exception as e:  # noqa: BLE001
                    msg = _message(e)
                    if not isinstance(e, (StepError, CommunicatorError)):
                        self.session.log_crash(self.name, traceback.format_exception(e))
                        msg = f"{type(e).__name__}: {e}"
                    ui.error(f"Post-processor failed: {msg}")
                    self._finish(stage, Status.FAILED, msg)
                    errors.append(f"Post-processor failed: {msg}")
                    abandoned = True
                    continue
                self._finish(stage, Status.SUCCEEDED)
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
            self.result.status = Status.FAILED
            self.result.error = "; ".join(errors)
            return
        self.result.artifacts = artifacts
        self.ctx.ui = build_ui

