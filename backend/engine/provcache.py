"""The provisioner cache of one build: find the longest cached prefix, mark those stages
``cached``, and commit a checkpoint after each provisioner that may be cached.

Only builders that offer a cache driver (docker: a committed container is an exact
checkpoint) take part; the engine calls in at three places: when the builder picks the
image to start (``lookup``), before the first provisioner (``skip_cached``) and after each
provisioner succeeded (``stored``). A chain of checkpoints stops for good at the first
provisioner that may not be cached (shell-local, a file download, breakpoint), that failed,
was skipped or was retried: what follows ran on a machine no key describes.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from . import cachekeys as K

if TYPE_CHECKING:
    from .stages import Stage

#: builders whose machines the cache can checkpoint
CACHED_BUILDERS = frozenset({"docker"})


def for_build(runner: Any) -> BuildCache | None:
    opts = runner.options
    if not getattr(opts, "cache", True) or runner.prepared.type not in CACHED_BUILDERS:
        return None
    if getattr(opts, "debug", False):  # a debug run pauses between steps: nothing to reuse
        return None
    return BuildCache(runner)


def resolve_rebuild_from(value: str, provisioners: list[Any]) -> int | None:
    """The 0-based position ``-rebuild-from=N|NAME`` names (N counts from 1), or None."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        n = int(value)
        return n - 1 if 1 <= n <= len(provisioners) else None
    for i, p in enumerate(provisioners):
        d = p.definition
        if value in (d.name, d.label, d.type):
            return i
    return None


def compute_keys(prepared: Any, secrets: list[str], base_image: str,
                 builder_config: Any) -> tuple[list[str], list[dict[str, Any]], dict[str, Any]]:
    """The keys and manifests of a build's leading run of cacheable provisioners, and the
    manifest of the base (image and builder settings) the first key starts from."""
    from .ledger import state_dir

    secret = K.machine_secret(state_dir())
    base = K.base_manifest(base_image, prepared.type,
                           K.redact(K.builder_settings(builder_config), secrets, secret))
    key = K.digest(base)
    keys: list[str] = []
    manifests: list[dict[str, Any]] = []
    for p in prepared.provisioners:
        d = p.definition
        if K.uncacheable_reason(d.type, p.plugin.config):
            break
        manifest = K.provisioner_manifest(key, d.type, p.plugin.config, secrets, secret)
        key = K.digest(manifest)
        keys.append(key)
        manifests.append(manifest)
    return keys, manifests, base


class BuildCache:
    def __init__(self, runner: Any):
        self.runner = runner
        self.driver: Any = None
        self.keys: list[str] = []  # one per cacheable provisioner of the leading run
        self.manifests: list[dict[str, Any]] = []
        self.base: dict[str, Any] = {}
        self.hits = 0
        self.next = 0  # the position whose checkpoint may be stored next
        self.stopped = False

    # -- keys ---------------------------------------------------------------------------
    def compute(self, base_image: str, builder_config: Any) -> None:
        r = self.runner
        secrets = list(r.session.template.sensitive_values) + list(r.prepared.secrets)
        self.keys, self.manifests, self.base = compute_keys(r.prepared, secrets, base_image,
                                                            builder_config)

    # -- the three hooks ------------------------------------------------------------------
    def lookup(self, ctx: Any, driver: Any) -> str:
        """The image to start the container from ("" for the template's own)."""
        self.driver = driver
        ui = ctx.ui
        try:
            return self._lookup(ui, driver)
        except Exception as e:  # noqa: BLE001 - a cache that cannot look up never fails a build
            ui.error(f"The provisioner cache is off for this build: {e}")
            self.hits = self.next = 0
            self.stopped = True
            return ""

    def _lookup(self, ui: Any, driver: Any) -> str:
        try:
            base = driver.base_image_id()
        except Exception:  # noqa: BLE001 - no base image: starting the container says so
            self.stopped = True
            return ""
        self.compute(base, driver.builder_config())
        limit = len(self.keys)
        rebuild = getattr(self.runner.options, "rebuild_from", "") or ""
        if rebuild:
            at = resolve_rebuild_from(rebuild, self.runner.prepared.provisioners)
            if at is None:
                ui.error(f"-rebuild-from={rebuild} names no provisioner of this build: every "
                         "provisioner runs")
                at = 0
            limit = min(limit, at)
        start = ""
        for i in range(limit):
            image = driver.find(self.keys[i])
            if not image:
                break
            start = image
            self.hits = i + 1
        self.next = self.hits
        if self.hits:  # mark the entries used (prune goes by use), off the build's path
            import threading

            used = self.keys[:self.hits]
            threading.Thread(target=driver.touch, args=(used,), name="kiln-cache-touch",
                             daemon=True).start()
        return start

    def skip_cached(self) -> int:
        """Mark the provisioners whose result the container already has; how many."""
        r = self.runner
        for pos in range(min(self.hits, len(r.prov_stages))):
            stage: Stage = r.prov_stages[pos]
            ui = r._start(stage)
            ui.say(f"Using cached result of provisioner {pos + 1} ({stage.name}) "
                   f"[{K.short(self.keys[pos])}]")
            r._finish(stage, "cached")
        return self.hits

    def stored(self, pos: int, stage: Stage) -> None:
        """After provisioner ``pos`` succeeded: commit its checkpoint when the chain holds."""
        if self.stopped or self.driver is None or pos != self.next or pos >= len(self.keys):
            self.stopped = True
            return
        r = self.runner
        meta = {"template": os.path.abspath(r.session.template.path), "build": r.name,
                "index": pos + 1, "provisioner": stage.name, "key": self.keys[pos],
                "manifest": self.manifests[pos], "stored": time.time()}
        if pos == 0:  # what `kiln cache why` compares when the first provisioner misses
            meta["base"] = self.base
        try:
            self.driver.checkpoint(self.keys[pos], meta)
        except Exception as e:  # a cache that cannot store never fails the build
            r.ctx.ui.error(f"Could not store provisioner {pos + 1} in the cache: {e}")
            self.stopped = True
            return
        self.next = pos + 1

    def stop(self) -> None:
        """What runs from now on is no longer what the keys describe (a retry, a skip)."""
        self.stopped = True
