"""The Docker engine as the provisioner cache's store.

A cache entry is an image committed from the build's container right after a provisioner
succeeded, tagged ``kiln-cache:<key>``. The tag, not a label, carries the key: docker
commit copies an image's labels into every container started from it and so into the
user's final image, while a tag stays on its one image. What ``kiln cache ls`` and ``why``
show (template, build, provisioner, the key's input manifest with sensitive values sealed)
goes in the image's commit comment, which no later image inherits.

The engine reaches this module only through :class:`DockerCacheDriver`; everything here
talks to the Engine API through the docker SDK, imported lazily.
"""

from __future__ import annotations

import json
from typing import Any

REPOSITORY = "kiln-cache"
COMMENT_MARK = "kiln-cache/1 "


class DockerCacheDriver:
    """What the cache needs from a docker build: the base image's identity, the settings
    that shape the container, looking entries up and committing new ones."""

    def __init__(self, shared: Any):
        self.shared = shared

    @property
    def api(self) -> Any:
        return self.shared.client.api

    def base_image_id(self) -> str:
        from .driver import docker_errors

        with docker_errors(f"cannot inspect the image {self.shared.config.image}"):
            return str(self.api.inspect_image(self.shared.config.image).get("Id", ""))

    def builder_config(self) -> Any:
        return self.shared.config

    def find(self, key: str) -> str:
        """The ID of the image cached under ``key``, or "" when there is none."""
        import docker

        try:
            return str(self.api.inspect_image(f"{REPOSITORY}:{key}").get("Id", ""))
        except docker.errors.NotFound:
            return ""

    def touch(self, keys: list[str]) -> None:
        """Mark entries used now (tagging again sets their LastTagTime): prune goes by use.
        Runs on a thread of its own, so with a client of its own."""
        import docker

        from .communicator import docker_client

        try:
            client = docker_client(timeout=60)
        except Exception:  # noqa: BLE001 - a missed mark only makes an entry look older
            return
        try:
            for key in keys:
                try:
                    client.api.tag(f"{REPOSITORY}:{key}", REPOSITORY, key)
                except docker.errors.APIError:
                    pass
        finally:
            client.close()

    def checkpoint(self, key: str, meta: dict[str, Any]) -> str:
        """Commit the container as the entry for ``key``; its image ID. The tag is part of
        the commit, so an entry exists only once its image is complete."""
        import docker

        old = self.find(key)
        comment = COMMENT_MARK + json.dumps(meta, sort_keys=True, separators=(",", ":"))
        res = self.api.commit(self.shared.container_id, repository=REPOSITORY, tag=key,
                              message=comment)
        image_id = str(res.get("Id", ""))
        if old and old != image_id:  # the tag moved: the older image is no entry any more
            try:
                self.api.remove_image(old, noprune=False)
            except docker.errors.APIError:
                pass  # still in use (a container, a later entry built on it)
        return image_id


# -- listing and pruning (kiln cache) ------------------------------------------------------


def read_comment(comment: str) -> dict[str, Any] | None:
    if not comment.startswith(COMMENT_MARK):
        return None
    try:
        meta = json.loads(comment[len(COMMENT_MARK):])
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


def entries(api: Any) -> list[dict[str, Any]]:
    """Every cache entry in the engine: key, image ID, parent, created, own size, meta."""
    import docker

    out = []
    for summary in api.images(name=REPOSITORY):
        for tag in summary.get("RepoTags") or []:
            repo, _, key = tag.rpartition(":")
            if repo != REPOSITORY:
                continue
            try:
                info = api.inspect_image(summary["Id"])
            except docker.errors.NotFound:  # pruned meanwhile
                continue
            created = _created(info.get("Created", ""))
            used = _created((info.get("Metadata") or {}).get("LastTagTime", "") or "")
            out.append({"key": key, "image": info.get("Id", ""), "parent": info.get("Parent", ""),
                        "created": created, "used": max(created, used),
                        "size": int(info.get("Size") or 0),
                        "meta": read_comment(info.get("Comment") or "") or {}})
    sizes = {e["image"]: e["size"] for e in out}
    parent_sizes: dict[str, int] = {}
    for e in out:
        p = e["parent"]
        if p and p not in sizes and p not in parent_sizes:
            try:
                parent_sizes[p] = int(api.inspect_image(p).get("Size") or 0)
            except docker.errors.NotFound:
                parent_sizes[p] = 0
    for e in out:
        p = e["parent"]
        base = sizes.get(p, parent_sizes.get(p, 0)) if p else 0
        e["own_size"] = max(0, e["size"] - base)
    out.sort(key=lambda e: (e["used"], e["created"]))
    return out


def _created(text: str) -> float:
    """Seconds since the epoch of an engine timestamp (RFC 3339 with nanoseconds); 0 when
    there is none."""
    import re
    from datetime import datetime

    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?",
                     text.strip())
    if not m or m.group(1).startswith("0001-"):
        return 0.0
    frac = ((m.group(2) or "") + "000000")[:6]
    zone = m.group(3) or "Z"
    zone = "+00:00" if zone == "Z" else zone
    try:
        return datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}").timestamp()
    except ValueError:
        return 0.0


def remove_entry(api: Any, entry: dict[str, Any], all_entries: list[dict[str, Any]]) -> list[str]:
    """Remove an entry and the entries committed on top of it (an image cannot go while
    another is built on it); the keys removed."""
    import docker

    children = [e for e in all_entries if e["parent"] == entry["image"]]
    removed: list[str] = []
    for child in children:
        removed += remove_entry(api, child, all_entries)
    try:
        api.remove_image(f"{REPOSITORY}:{entry['key']}", noprune=False)
    except docker.errors.NotFound:
        pass
    removed.append(entry["key"])
    return removed
