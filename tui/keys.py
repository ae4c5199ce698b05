"""Key bindings with ids, and the user's config files (keys.toml, targets.toml).

Every binding has an id; ``keys.toml`` maps ids to keys, e.g.::

    build = "B"            # or, in a [keys] table
    retry = "ctrl+r,r"     # several keys, comma separated

``targets.toml`` names machines the provisioners-on-null run can target::

    [[target]]
    name = "staging"
    host = "10.0.0.5"
    port = 22
    user = "ubuntu"
    private_key_file = "~/.ssh/id_ed25519"

Both live in ``$KILN_CONFIG_DIR`` (else ``$XDG_CONFIG_HOME/kiln``, else
``~/.config/kiln``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.binding import Binding


@dataclass(frozen=True)
class KeySpec:
    id: str
    key: str  # default key(s), comma separated
    action: str
    description: str  # short: shown in the footer
    help: str  # one line for the help screen
    scope: str  # app | templates | output | builds | stages
    show: bool = True
    priority: bool = False
    #: left out of the footer while a build waits for an answer (the key still works), so
    #: the answers fit in 80 columns
    quiet_when_paused: bool = False


SPECS: tuple[KeySpec, ...] = (
    # the whole app
    KeySpec(
        "build",
        "b",
        "build",
        "Build",
        "Build the selected template (or only the selected builder)",
        "app",
        quiet_when_paused=True,
    ),
    KeySpec(
        "provision-null",
        "p",
        "provision_null",
        "On null",
        "Run its provisioners on the null builder: a kept machine first, this host only "
        "when you confirm",
        "app",
        quiet_when_paused=True,
    ),
    KeySpec(
        "postprocess-file",
        "o",
        "postprocess_file",
        "On file",
        "Run its post-processors on the file builder, in a scratch directory, on a stand-in "
        "(or the last build's artifact)",
        "app",
        quiet_when_paused=True,
    ),
    KeySpec(
        "dev",
        "d",
        "dev",
        "Dev",
        "Dev mode (docker): build, keep the container, rerun from the first changed "
        "provisioner on every save; d again stops and removes it",
        "app",
        show=False,  # the footer's room goes to the keys of a running build
    ),
    KeySpec(
        "retry",
        "r",
        "retry",
        "Retry",
        "Re-read the template, run the failed provisioner again, go on",
        "app",
    ),
    KeySpec("skip", "s", "skip", "Skip", "Skip the failed provisioner and carry on", "app"),
    KeySpec(
        "cleanup", "c", "cleanup", "Clean up", "Give up on the failed build and clean up", "app"
    ),
    KeySpec(
        "keep",
        "k",
        "keep",
        "Keep",
        "Stop the failed build, keep its machine, show how to get in",
        "app",
    ),
    KeySpec(
        "cancel",
        "x",
        "cancel",
        "Cancel",
        "Cancel the selected build (cleanup runs)",
        "app",
        quiet_when_paused=True,
    ),
    KeySpec(
        "edit",
        "e",
        "edit",
        "Edit",
        "Open the template in $EDITOR (at the problem's line)",
        "app",
        quiet_when_paused=True,
    ),
    KeySpec(
        "iam-policy",
        "i",
        "iam_policy",
        "IAM",
        "Show the least-privilege IAM policy the selected AWS template needs, and why",
        "app",
        show=False,
    ),
    KeySpec(
        "zoom",
        "z",
        "zoom",
        "Zoom",
        "Zoom the focused pane to the whole screen; again to put it back",
        "app",
    ),
    KeySpec("help", "question_mark,f1", "help", "Help", "Show this help", "app"),
    KeySpec(
        "quit",
        "q",
        "quit",
        "Quit",
        "Quit (asks first when builds are running, then cancels them)",
        "app",
    ),
    KeySpec(
        "quit-alt",
        "ctrl+q,ctrl+c",
        "quit",
        "Quit",
        "Quit, as q does",
        "app",
        show=False,
        priority=True,
    ),
    KeySpec("focus-next", "tab", "app.focus_next", "Next pane", "Next pane", "app", show=False),
    KeySpec(
        "focus-previous",
        "shift+tab",
        "app.focus_previous",
        "Previous pane",
        "Previous pane",
        "app",
        show=False,
    ),
    # templates pane
    KeySpec(
        "templates-filter",
        "slash",
        "filter",
        "Filter",
        "Filter templates by name",
        "templates",
        show=False,  # the footer's room goes to the keys that act on builds
    ),
    KeySpec(
        "templates-rescan",
        "ctrl+r",
        "rescan",
        "Rescan",
        "Look for templates again and re-validate them",
        "templates",
        show=False,
    ),
    # output pane
    KeySpec("output-search", "slash", "search", "Search", "Search the output", "output"),
    KeySpec("output-next", "n", "next_match", "Next", "Next match", "output", show=False),
    KeySpec(
        "output-previous", "N", "previous_match", "Previous", "Previous match", "output", show=False
    ),
    KeySpec(
        "output-filter",
        "f",
        "filter",
        "Filter",
        "Show only lines matching a word (with 2 lines of context)",
        "output",
    ),
    KeySpec(
        "output-follow",
        "end",
        "follow",
        "Follow",
        "Jump to the end and follow new output",
        "output",
        show=False,  # in the help and the palette: the footer is for the main keys
    ),
    KeySpec("output-top", "home", "top", "Top", "Jump to the first line", "output", show=False),
    KeySpec(
        "output-scope",
        "v",
        "toggle_scope",
        "Stage/build",
        "Show the selected stage only, or the whole build",
        "output",
        show=False,  # in the help and the palette: the footer is for the main keys
    ),
    KeySpec(
        "output-copy",
        "y",
        "copy",
        "Copy",
        "Copy the output shown to the clipboard",
        "output",
        show=False,
    ),
    KeySpec(
        "output-save",
        "w",
        "save",
        "Save",
        "Save the stage's (or build's) full log to a file",
        "output",
        show=False,  # in the help and the palette: the footer is for the main keys
    ),
    KeySpec(
        "output-clear",
        "escape",
        "clear",
        "Clear",
        "Clear the search and the filter",
        "output",
        show=False,
    ),
)

SCOPE_TITLES = {
    "app": "Everywhere",
    "templates": "Templates pane",
    "builds": "Builds pane",
    "stages": "Stages pane",
    "output": "Output pane",
}


QUIET = "quiet"  # the parameter of a key's twin binding (see quiet_when_paused)


def bindings(scope: str) -> list[Binding]:
    out = []
    for s in SPECS:
        if s.scope != scope:
            continue
        out.append(
            Binding(s.key, s.action, s.description, show=s.show, id=s.id, priority=s.priority)
        )
        if s.quiet_when_paused:
            # when the app hides the binding above, the key falls through to this twin
            twin = f"{s.action}('{QUIET}')"
            out.append(
                Binding(s.key, twin, s.description, show=False, id=twin_id(s.id))
            )
    return out


def twin_id(binding_id: str) -> str:
    return f"{binding_id}.{QUIET}"


def with_twins(keymap: dict[str, str]) -> dict[str, str]:
    """The keymap with each remapped key applied to its twin binding too."""
    out = dict(keymap)
    for s in SPECS:
        if s.quiet_when_paused and s.id in keymap:
            out[twin_id(s.id)] = keymap[s.id]
    return out


def spec(binding_id: str) -> KeySpec:
    for s in SPECS:
        if s.id == binding_id:
            return s
    raise KeyError(binding_id)


def config_dir(override: str | os.PathLike | None = None) -> Path:
    if override:
        return Path(override)
    env = os.environ.get("KILN_CONFIG_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "kiln"


def _read_toml(path: Path) -> tuple[dict[str, Any], list[str]]:
    import tomllib

    if not path.is_file():
        return {}, []
    try:
        with open(path, "rb") as f:
            return tomllib.load(f), []
    except (OSError, tomllib.TOMLDecodeError) as e:
        return {}, [f"{path}: {e}"]


def load_keymap(directory: Path) -> tuple[dict[str, str], list[str]]:
    """Binding id -> key string from keys.toml; unknown ids are reported, not fatal."""
    data, problems = _read_toml(directory / "keys.toml")
    table = data.get("keys", data) if isinstance(data.get("keys"), dict) else data
    known = {s.id for s in SPECS}
    keymap: dict[str, str] = {}
    for k, v in table.items():
        if k == "keys":
            continue
        if k not in known:
            problems.append(f"{directory / 'keys.toml'}: unknown binding id {k!r}")
            continue
        if isinstance(v, list):
            v = ",".join(str(x) for x in v)
        if not isinstance(v, str) or not v.strip():
            problems.append(f'{directory / "keys.toml"}: {k} must be a key name like "ctrl+b"')
            continue
        keymap[k] = v.strip()
    return keymap, problems


@dataclass(frozen=True)
class TargetConfig:
    name: str
    host: str = ""
    port: int = 22
    user: str = ""
    private_key_file: str = ""
    password: str = ""
    container: str = ""


def load_targets(directory: Path) -> tuple[list[TargetConfig], list[str]]:
    """Targets from targets.toml: ``[[target]]`` entries or ``[targets.NAME]`` tables."""
    data, problems = _read_toml(directory / "targets.toml")
    raw: list[dict[str, Any]] = []
    for item in data.get("target", []) if isinstance(data.get("target"), list) else []:
        if isinstance(item, dict):
            raw.append(item)
    if isinstance(data.get("targets"), dict):
        for name, item in data["targets"].items():
            if isinstance(item, dict):
                raw.append({"name": name, **item})
    out = []
    for i, item in enumerate(raw):
        name = str(
            item.get("name") or item.get("host") or item.get("container") or f"target {i + 1}"
        )
        if not item.get("host") and not item.get("container"):
            problems.append(f"targets.toml: target {name!r} needs a host (or a container)")
            continue
        try:
            port = int(item.get("port", 22))
        except (TypeError, ValueError):
            problems.append(f"targets.toml: target {name!r}: port must be a number")
            continue
        key = str(item.get("private_key_file", "") or "")
        out.append(
            TargetConfig(
                name=name,
                host=str(item.get("host", "")),
                port=port,
                user=str(item.get("user", "") or os.environ.get("USER", "root")),
                private_key_file=os.path.expanduser(key) if key else "",
                password=str(item.get("password", "") or ""),
                container=str(item.get("container", "") or ""),
            )
        )
    return out, problems
