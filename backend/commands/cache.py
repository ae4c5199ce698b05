"""``kiln cache ls|prune|why``: what the provisioner cache holds, trimming it, and why a
provisioner would (not) be reused by the next build."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

CACHE_HELP = """\
Usage: kiln cache <ls|prune|why> [options]

  The provisioner cache of docker builds: after each provisioner a build commits the
  container as an image tagged kiln-cache:<key>, and the next build reuses the longest
  run of provisioners whose keys still match.

  kiln cache ls [-json] [TEMPLATE]
      Every entry: template, build, provisioner, key, image, size (its own layer), age.
  kiln cache prune [-all] [-keep-storage=SIZE] [-until=DURATION] [-dry-run] [TEMPLATE]
      Without options: the entries of templates that no longer exist. With TEMPLATE,
      only that template's entries are considered (-keep-storage: its share).
      -all                  every entry
      -keep-storage=5GB     the least recently used entries until the cache takes at
                            most SIZE (an entry goes with the entries built on top of it)
      -until=72h            entries not used for that long
  kiln cache why [-var k=v] [-var-file=F] [-only=..] [-except=..] TEMPLATE
      For each provisioner of each docker build: hit or miss, and for a miss the input
      that changed (file, setting), as a diff of the input manifests.

  Force a rebuild with `kiln build -rebuild-from=N|NAME` or `-cache=false`.
"""


class CacheUsageError(Exception):
    """A command line ``kiln cache`` cannot take; the CLI prints it as a usage error."""


def _usage(text: str) -> Exception:
    return CacheUsageError(text)


def run(argv: list[str]) -> int:
    from .flags import UsageError

    try:
        return _run(argv)
    except UsageError as e:  # Flags' errors (backend.cli may also run as __main__)
        raise CacheUsageError(str(e)) from None


def _run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "-help", "--help", "help"):
        print(CACHE_HELP)
        return 0 if argv else 1
    sub, rest = argv[0], argv[1:]
    if sub in ("ls", "list"):
        return cmd_ls(rest)
    if sub == "prune":
        return cmd_prune(rest)
    if sub == "why":
        return cmd_why(rest)
    raise _usage(f"unknown cache command {sub!r}: expected ls, prune or why\n\n{CACHE_HELP}")


def _client() -> Any:
    from ..api import CommunicatorError, docker_client

    try:
        return docker_client(timeout=120)
    except CommunicatorError as e:
        print(f"Error: {e}", file=sys.stderr)
        return None


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n}"


def parse_size(text: str) -> int:
    """``5GB``, ``500MB``, ``1.5g``, ``2GiB``, ``1024``: bytes (SI units, as docker's
    ``--keep-storage``; ``KiB``/``MiB``/``GiB`` are binary)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*", text.lower())
    if not m:
        raise _usage(f'invalid size "{text}": expected a number with an optional unit '
                     "(B, kB, MB, GB, TB), e.g. 5GB")
    power = " kmgt".index(m.group(2) or " ")
    base = 1024 if m.group(3) else 1000
    return int(float(m.group(1)) * base ** power)


def parse_until(text: str) -> float:
    from ..template.golang import parse_duration

    try:
        seconds = parse_duration(text)
    except Exception:
        raise _usage(f'invalid duration "{text}": expected e.g. 72h, 30m or 1h30m') from None
    if seconds < 0:
        raise _usage(f'invalid duration "{text}": it must not be negative')
    return seconds


def _age(seconds: float) -> str:
    seconds = max(0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _template_of(e: dict[str, Any]) -> str:
    return str(e["meta"].get("template", "") or "")


def _shown_path(path: str) -> str:
    if not path:
        return "?"
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else path


# -- ls -------------------------------------------------------------------------------------


def cmd_ls(argv: list[str]) -> int:
    from ..api import docker_cache
    from ..template.errors import printable
    from .flags import Flags

    flags = Flags({"json": "bool", "h": "bool", "help": "bool"}).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(CACHE_HELP)
        return 0
    if len(flags.args) > 1:
        raise _usage("kiln cache ls takes at most one TEMPLATE")
    client = _client()
    if client is None:
        return 1
    try:
        entries = docker_cache.entries(client.api)
    finally:
        client.close()
    if flags.args:
        want = os.path.abspath(flags.args[0])
        entries = [e for e in entries if _template_of(e) == want]
    entries.sort(key=lambda e: (_template_of(e), str(e["meta"].get("build", "")),
                                int(e["meta"].get("index", 0) or 0), -e["created"]))
    now = time.time()
    if flags.get("json"):
        print(json.dumps([{
            "template": _template_of(e), "build": e["meta"].get("build", ""),
            "index": e["meta"].get("index"), "provisioner": e["meta"].get("provisioner", ""),
            "key": e["key"], "image": e["image"], "size": e["own_size"],
            "created": e["created"], "used": e["used"]} for e in entries], indent=2))
        return 0
    if not entries:
        print("The provisioner cache is empty.")
        return 0
    rows = [("TEMPLATE", "BUILD", "PROVISIONER", "KEY", "IMAGE", "SIZE", "AGE")]
    for e in entries:
        meta = e["meta"]
        name = f"{meta.get('index', '?')} {meta.get('provisioner', '')}"
        name = name if len(name) <= 40 else name[:37] + "..."
        image = e["image"].split(":", 1)[-1][:12]
        rows.append((_shown_path(_template_of(e)), str(meta.get("build", "?")), name,
                     e["key"][:12], image, human_size(e["own_size"]), _age(now - e["created"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print(printable("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(),
                        False))
    total = sum(e["own_size"] for e in entries)
    print(f"{len(entries)} entr{'ies' if len(entries) != 1 else 'y'}, {human_size(total)}")
    return 0


# -- prune ----------------------------------------------------------------------------------


def select_prune(entries: list[dict[str, Any]], *, everything: bool, keep_storage: int | None,
                 until: float | None, now: float) -> list[dict[str, Any]]:
    """The entries to remove, least recently used first; an entry chosen takes the entries
    built on top of it along (an image cannot go while another is built on it)."""
    by_image = {e["image"]: e for e in entries}
    children: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        children.setdefault(e["parent"], []).append(e)
    chosen: dict[str, dict[str, Any]] = {}

    def take(e: dict[str, Any]) -> None:
        if e["key"] in chosen:
            return
        chosen[e["key"]] = e
        for c in children.get(e["image"], []):
            take(c)

    order = sorted(entries, key=lambda e: (e["used"], e["created"]))
    for e in order:
        if everything:
            take(e)
        elif until is not None and now - e["used"] > until:
            take(e)
        elif keep_storage is None and until is None:
            path = _template_of(e)
            if path and not os.path.exists(path):
                take(e)
    if keep_storage is not None:
        total = sum(e["own_size"] for e in entries if e["key"] not in chosen)
        for e in order:
            if total <= keep_storage:
                break
            if e["key"] in chosen:
                continue
            before = set(chosen)
            take(e)
            total -= sum(chosen[k]["own_size"] for k in set(chosen) - before)
    del by_image
    return list(chosen.values())


def cmd_prune(argv: list[str]) -> int:
    from ..api import docker_cache
    from .flags import Flags

    flags = Flags({"all": "bool", "keep-storage": "str", "until": "str", "dry-run": "bool",
                   "h": "bool", "help": "bool"}).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(CACHE_HELP)
        return 0
    if len(flags.args) > 1:
        raise _usage(f"kiln cache prune takes at most one TEMPLATE (got {flags.args[1]!r})")
    keep = parse_size(str(flags.get("keep-storage"))) if flags.get("keep-storage") is not None \
        else None
    until = parse_until(str(flags.get("until"))) if flags.get("until") is not None else None
    client = _client()
    if client is None:
        return 1
    import docker

    try:
        entries = docker_cache.entries(client.api)
        if flags.args:
            want = os.path.abspath(flags.args[0])
            entries = [e for e in entries if _template_of(e) == want]
        doomed = select_prune(entries, everything=bool(flags.get("all")), keep_storage=keep,
                              until=until, now=time.time())
        # the entries built on top of others go first: an image cannot go before its children
        doomed.sort(key=lambda e: (e["created"], e["image"]), reverse=True)
        freed = 0
        removed = 0
        failed = 0
        for e in doomed:
            label = f"{e['key'][:12]} ({_shown_path(_template_of(e))} " \
                    f"{e['meta'].get('build', '?')} #{e['meta'].get('index', '?')})"
            if flags.get("dry-run"):
                print(f"would remove {label}")
                continue
            try:
                client.api.remove_image(f"{docker_cache.REPOSITORY}:{e['key']}")
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as ex:
                failed += 1
                print(f"could not remove {label}: {ex.explanation or ex}", file=sys.stderr)
                continue
            removed += 1
            freed += e["own_size"]
            print(f"removed {label}")
    finally:
        client.close()
    if not flags.get("dry-run"):
        left = sum(e["own_size"] for e in entries) - freed
        print(f"Removed {removed} entr{'ies' if removed != 1 else 'y'}, "
              f"{human_size(freed)} freed; the cache now takes {human_size(max(0, left))}.")
    return 1 if failed else 0


# -- why ------------------------------------------------------------------------------------


def cmd_why(argv: list[str]) -> int:
    from ..api import CACHED_BUILDERS, Masker, Preparer, compute_keys, docker_cache, select_builds
    from ..api import cachekeys as K
    from ..template.errors import TemplateError, printable
    from .flags import COMMON, Flags
    from .flags import options_from as _options

    flags = Flags({**COMMON}).parse(argv)
    if flags.get("h") or flags.get("help") or len(flags.args) != 1:
        if flags.get("h") or flags.get("help"):
            print(CACHE_HELP)
            return 0
        raise _usage("Usage: kiln cache why [-var k=v] [-var-file=F] [-only=..] TEMPLATE")
    path = flags.args[0]
    options = _options(flags)
    from ..api import load_template

    try:
        template = load_template(path, options, evaluate_data=True)
        prep = Preparer(template, options)
        builds = prep.prepare(select_builds(template, options.only, options.except_))
        if prep.problems:
            raise TemplateError(prep.problems)
    except TemplateError as e:
        from .messages import print_problems as _print_problems

        _print_problems(e)
        return 1
    builds = [b for b in builds if b.type in CACHED_BUILDERS]
    if not builds:
        print(f"{path} has no docker build: only docker builds are cached.")
        return 0
    client = _client()
    if client is None:
        return 1
    import docker

    out: list[str] = []
    try:
        entries = docker_cache.entries(client.api)
        where = os.path.abspath(template.path)
        for b in builds:
            secrets = list(template.sensitive_values) + list(b.secrets)
            mask = Masker(secrets)
            cfg = b.builder.config
            try:
                base_id = str(client.api.inspect_image(cfg.image).get("Id", ""))
            except docker.errors.NotFound:
                out.append(f"Build '{b.name}': the base image {cfg.image} is not in the engine; "
                           "every provisioner misses.")
                continue
            keys, manifests, base = compute_keys(b, secrets, base_id, cfg)
            out.append(f"Build '{b.name}' (base image {cfg.image}, {base_id[7:19]}):")
            mine = [e for e in entries if _template_of(e) == where
                    and e["meta"].get("build") == b.name]
            missed = False
            for i, p in enumerate(b.provisioners):
                label = mask(p.label)
                head = f"  {i + 1}  {label}"
                if i >= len(keys):
                    reason = K.uncacheable_reason(p.definition.type, p.plugin.config)
                    out.append(f"{head}: not cached: " + (reason or "it follows a provisioner "
                               "that is never cached"))
                    missed = True
                    continue
                key = keys[i]
                hit = not missed and any(e["key"] == key for e in entries)
                if hit:
                    out.append(f"{head}: hit [{K.short(key)}]")
                    continue
                prev = [e for e in mine if e["meta"].get("index") == i + 1]
                prev.sort(key=lambda e: e["meta"].get("stored", 0), reverse=True)
                if missed and not prev:
                    out.append(f"{head}: miss (an earlier provisioner runs again)")
                    continue
                missed = True
                if not prev:
                    out.append(f"{head}: miss (never stored for this template and build)")
                    continue
                old = prev[0]["meta"].get("manifest") or {}
                diff = K.manifest_diff(old, manifests[i])
                if diff:
                    out.append(f"{head}: miss, its inputs changed:")
                    out += [f"      {line}" for line in diff[2:] if not line.startswith("@@")]
                elif i == 0:
                    old_base = prev[0]["meta"].get("base") or {}
                    bdiff = K.manifest_diff(old_base, base) if old_base else []
                    out.append(f"{head}: miss, the base image or builder settings changed"
                               + (":" if bdiff else ""))
                    out += [f"      {line}" for line in bdiff[2:] if not line.startswith("@@")]
                else:
                    out.append(f"{head}: miss (an earlier provisioner changed)")
    finally:
        client.close()
    for line in out:
        print(printable(line, False))
    return 0


def cmd_cache(argv: list[str], machine: bool) -> int:
    from .flags import UsageError

    try:
        return run(argv)
    except CacheUsageError as e:
        raise UsageError(str(e)) from None
