"""The artifice post-processor: replace the artifact by files the build left on disk.

Each entry of ``files`` is a glob with Go's rules (``*`` and ``?`` stay within
one path element and match dot-files, ``[^...]`` negates a class, ``\\``
escapes); patterns that match nothing add nothing. The new artifact has no
generated data, and destroying it removes its files.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass

from ...sdk.config import ConfigProblems, opt
from ...sdk.plugin import Artifact, PostProcessor, StepError

BUILDER_ID = "packer.post-processor.artifice"


@dataclass
class ArtificeConfig:
    files: list[str] = opt(default_factory=list, doc="paths or globs of the new artifact's files")

    def check(self) -> None:
        if not self.files:
            raise ConfigProblems([("files", "artifice needs at least one entry in files")])


class ArtificePostProcessor(PostProcessor):
    type_name = "artifice"
    Config = ArtificeConfig
    default_keep = (True, False)

    config: ArtificeConfig

    def post_process(self, ctx, ui, artifact: Artifact) -> Artifact:
        if artifact.files():
            ui.say(f"Discarding files from artifact: {', '.join(artifact.files())}")
        files: list[str] = []
        for pattern in self.config.files:
            try:
                matches = go_glob(pattern)
            except ValueError as e:
                raise StepError(f"bad pattern {pattern!r} in files: {e}") from e
            for path in matches:
                try:
                    os.stat(path)
                except OSError as e:
                    raise StepError(f"cannot use {path}: {e.strerror or e}") from e
                files.append(path)
        ui.say(f"Using these artifact files: {', '.join(files)}")
        return Artifact(BUILDER_ID, id="", files=files,
                        string=f"Created artifact from files: {', '.join(files)}")


# --------------------------------------------------------------------------- Go's glob

_META = "*?[\\"


def _has_meta(s: str) -> bool:
    return any(c in s for c in _META)


def _translate(pattern: str) -> re.Pattern[str]:
    """One path element's pattern as a regex; ValueError for Go's ErrBadPattern cases."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i >= n:
                raise ValueError("syntax error in pattern")
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            negate = i < n and pattern[i] == "^"
            if negate:
                i += 1
            parts, first = [], True
            while True:
                if i >= n:
                    raise ValueError("syntax error in pattern")
                if pattern[i] == "]" and not first:
                    i += 1
                    break
                lo, i = _class_char(pattern, i)
                hi = lo
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1)
                    if hi < lo:
                        raise ValueError("syntax error in pattern")
                parts.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
                first = False
            out.append(("[^" if negate else "[") + "".join(parts) + "]")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.S)


def _class_char(p: str, i: int) -> tuple[str, int]:
    if i >= len(p) or p[i] in "-]":
        raise ValueError("syntax error in pattern")
    if p[i] == "\\":
        i += 1
        if i >= len(p):
            raise ValueError("syntax error in pattern")
    return p[i], i + 1


def _go_join(d: str, name: str) -> str:
    """Go's ``filepath.Join``: joined and cleaned (``./a`` -> ``a``, ``//a`` -> ``/a``)."""
    p = posixpath.normpath(posixpath.join(d, name))
    return "/" + p.lstrip("/") if p.startswith("//") else p


def _glob_dir(d: str, pattern: str) -> list[str]:
    rx = _translate(pattern)
    try:
        if not os.path.isdir(d):
            return []
        names = sorted(os.listdir(d))
    except OSError:
        return []
    return [_go_join(d, name) for name in names if rx.fullmatch(name)]


def go_glob(pattern: str) -> list[str]:
    """``filepath.Glob``: matches in directory order (sorted), paths cleaned."""
    if not _has_meta(pattern):
        return [pattern] if os.path.lexists(pattern) else []
    _translate(pattern.rsplit("/", 1)[-1])  # report a bad pattern even with no directory
    d, _, base = pattern.rpartition("/")
    if "/" in pattern:
        d = d or "/"
    else:
        d = "."
    if not _has_meta(d):
        return _glob_dir(d, base)
    if d == pattern:
        raise ValueError("syntax error in pattern")
    out: list[str] = []
    for sub in go_glob(d):
        out.extend(_glob_dir(sub, base))
    return out
