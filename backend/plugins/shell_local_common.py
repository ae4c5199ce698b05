"""What the shell-local provisioner and post-processor share: config, checks, running.

Both run a command (or a script made from ``inline`` lines) on this host. The
script's path and the flattened environment-variable string are handed to each
element of ``execute_command`` as ``{{.Script}}``/``{{.Command}}`` and
``{{.Vars}}``; the resulting argv is started directly, without an extra shell,
in the environment Kiln itself runs in. Like Packer, the variables of
``environment_vars``/``env`` reach the script only through ``{{.Vars}}``.

This module also holds the run-time renderer every post-processor uses for its
deferred fields (``output``, ``custom_data``...).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..sdk.config import ConfigProblems, Deferred, opt
from ..sdk.plugin import Cancelled, StepError

if TYPE_CHECKING:
    from ..sdk.context import BuildContext, StageUI

#: Go's names for the operating systems ``only_on`` may list
SUPPORTED_OS = ("darwin", "freebsd", "linux", "openbsd", "solaris", "windows")

DEFAULT_EXECUTE_COMMAND = ("/bin/sh", "-c", "{{.Vars}} {{.Script}}")
DEFAULT_SHEBANG = "/bin/sh -e"
DEFAULT_ENV_VAR_FORMAT = "%s='%s' "

# what a builder puts in the generated data when it has no HTTP server
HTTP_VARS = {
    "PackerHTTPAddr": ("PACKER_HTTP_ADDR", "ERR_HTTP_ADDR_NOT_IMPLEMENTED_BY_BUILDER"),
    "PackerHTTPIP": ("PACKER_HTTP_IP", "ERR_HTTP_IP_NOT_IMPLEMENTED_BY_BUILDER"),
    "PackerHTTPPort": ("PACKER_HTTP_PORT", "ERR_HTTP_PORT_NOT_IMPLEMENTED_BY_BUILDER"),
}


def runtime_os() -> str:
    """This host's OS under the name Go (and so ``only_on``) uses."""
    p = sys.platform
    if p.startswith("linux"):
        return "linux"
    if p == "win32":
        return "windows"
    if p.startswith("sunos"):
        return "solaris"
    for name in ("darwin", "freebsd", "openbsd"):
        if p.startswith(name):
            return name
    return p


# --------------------------------------------------------------------------- rendering


def runtime_funcs(ctx: BuildContext, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``{{ }}`` functions available when a plugin renders at run time;
    ``{{ build `X` }}`` gives the generated value of X."""
    from ..template import funcs as F
    from ..template.hcl2.loader import is_hcl2_path

    return F.packer_funcs(F.FuncContext(
        user_vars=ctx.user_vars, template_path=ctx.template_path,
        build_name=ctx.build_name, build_type=ctx.build_type,
        build_data_keys=data if data is not None else {},
        hcl2=bool(ctx.template_path) and is_hcl2_path(ctx.template_path),
    ))


def unusable_paths(
    paths: list[str], key: str, noun: str, probe: Callable[[str], Any] = os.stat
) -> list[tuple[str, str]]:
    """Config problems (under ``key``) for the local ``paths`` that ``probe`` fails on."""
    problems = []
    for path in paths:
        try:
            probe(path)
        except OSError as e:
            problems.append((key, f"{noun} {path!r} cannot be used: {e.strerror or e}"))
    return problems


def render_runtime(ctx: BuildContext, text: str, data: dict[str, Any] | None, what: str) -> str:
    """Render ``text`` with the build's generated ``data`` until it stops changing.

    ``what`` names the field in the error message ("inline command", "output").
    """
    if "{{" not in text:
        return text
    from ..template import gotmpl

    try:
        return gotmpl.render_until_stable(text, runtime_funcs(ctx, data), data or {})
    except ValueError as e:  # TemplateSyntaxError and RenderError are ValueErrors
        raise StepError(f"cannot render {what} {text!r}: {e}") from e


def go_sprintf(fmt: str, *args: Any) -> str:
    """``fmt.Sprintf`` for the env-var format (``%s='%s' ``), through the template engine's
    printf so every verb and Go's ``%!s(MISSING)`` markers behave as in Packer."""
    from ..template import gotmpl

    data = {"F": fmt, **{f"A{i}": a for i, a in enumerate(args)}}
    call = "{{printf .F" + "".join(f" .A{i}" for i in range(len(args))) + "}}"
    return gotmpl.render(call, {}, data)


# --------------------------------------------------------------------------- config


@dataclass
class ShellLocalConfig:
    command: str = opt("", doc="deprecated: one command; same as a one-line inline")
    inline: list[str] = opt(default_factory=list, doc="commands, written to a temp script")
    script: str = opt("", doc="path of a local script to run")
    scripts: list[str] = opt(default_factory=list, doc="paths of local scripts, run in order")
    execute_command: list[Deferred] = opt(
        default_factory=list,
        doc='argv run for each script; default ["/bin/sh", "-c", "{{.Vars}} {{.Script}}"]',
    )
    inline_shebang: str = opt("", doc="interpreter line of the inline script (/bin/sh -e)")
    environment_vars: list[str] = opt(default_factory=list, doc='"KEY=value" items for {{.Vars}}')
    env: dict[str, str] | None = opt(None, doc="KEY: value map for {{.Vars}}; wins over "
                                     "environment_vars")
    env_var_format: str = opt("", doc="printf format of one variable in {{.Vars}} (%s='%s' )")
    only_on: list[str] = opt(default_factory=list, doc="run only on these host OSes")
    valid_exit_codes: list[int] = opt(default_factory=list, doc="exit codes that mean success "
                                      "([0])")
    tempfile_extension: str = opt("", doc="extension of the inline temp script")
    use_linux_pathing: bool = opt(False, doc="Windows Subsystem for Linux paths (Windows only)")
    binary: bool = opt(False, doc="accepted for compatibility; no effect")

    # -- derived values (the user's fields are never rewritten, so check() may run twice)
    def inline_lines(self) -> list[str]:
        if self.command:
            return [self.command]
        return list(self.inline)

    def script_paths(self) -> list[str]:
        if self.script:
            return [self.script]
        return list(self.scripts)

    def exec_argv_template(self) -> list[str]:
        return [str(x) for x in self.execute_command] or list(DEFAULT_EXECUTE_COMMAND)

    def shebang(self) -> str:
        return self.inline_shebang or DEFAULT_SHEBANG

    def var_format(self) -> str:
        return self.env_var_format or DEFAULT_ENV_VAR_FORMAT

    def exit_codes(self) -> list[int]:
        return list(self.valid_exit_codes) or [0]

    def extension(self) -> str:
        return self.tempfile_extension[1:] if self.tempfile_extension.startswith(".") \
            else self.tempfile_extension

    def check(self) -> None:
        problems = self.problems()
        if problems:
            raise ConfigProblems(problems)

    def problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        given = [k for k, v in (("command", self.command), ("inline", self.inline),
                                ("script", self.script), ("scripts", self.scripts)) if v]
        if not given:
            problems.append(("", "one of command, inline, script or scripts must be set"))
        elif len(given) > 1:
            problems.append((given[1], "only one of command, inline, script and scripts may be "
                             f"set; this one has {' and '.join(given)}"))
        for name in self.only_on:
            if name not in SUPPORTED_OS:
                problems.append(("only_on", f"unknown OS {name!r} in only_on; the names are "
                                 f"{', '.join(SUPPORTED_OS)}"))
        if self.use_linux_pathing:
            if self.inline_lines():
                problems.append(("use_linux_pathing", "use_linux_pathing works only with "
                                 "script or scripts, not with inline or command"))
            for path in self.script_paths():
                try:
                    windows_to_wsl_path(os.path.abspath(path))
                except ValueError as e:
                    problems.append(("use_linux_pathing", str(e)))
        for kv in self.environment_vars:
            key, sep, _ = kv.partition("=")
            if not sep or not key:
                problems.append(("environment_vars",
                                 f"environment variable {kv!r} is not of the form KEY=value"))
        return problems

    def check_scripts_exist(self) -> None:
        """Prepare-time check: every script must exist."""
        out = unusable_paths(self.script_paths(), "scripts" if self.scripts else "script",
                             "script")
        if out:
            raise ConfigProblems(out)

    def describe(self) -> str:
        lines = self.inline_lines()
        if lines:
            first = lines[0].strip().splitlines()[0] if lines[0].strip() else ""
            more = f" (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
            return f"{first}{more}"
        paths = self.script_paths()
        if paths:
            more = f" (+{len(paths) - 1} scripts)" if len(paths) > 1 else ""
            return f"{paths[0]}{more}"
        return ""


def windows_to_wsl_path(abs_path: str) -> str:
    r"""``C:\dir\x.sh`` -> ``/mnt/c/dir/x.sh``; a path without a drive is an error."""
    p = abs_path.replace("\\", "/")
    drive, sep, rest = p.partition(":/")
    if not sep:
        raise ValueError(f"use_linux_pathing needs a Windows path with a drive (C:/...); "
                         f"got {p}")
    return f"/mnt/{drive.lower()}/{rest}"


# --------------------------------------------------------------------------- running


def flatten_env_vars(config: ShellLocalConfig, ctx: BuildContext, data: dict[str, Any]) -> str:
    """The ``{{.Vars}}`` string: Packer's variables plus the user's, sorted by name."""
    env = {"PACKER_BUILD_NAME": ctx.build_name, "PACKER_BUILDER_TYPE": ctx.build_type}
    for key, (name, unset) in HTTP_VARS.items():
        value = data.get(key)
        if value is not None and value != unset:
            env[name] = str(value)
    pairs = [render_runtime(ctx, kv, data, "environment variable")
             for kv in config.environment_vars]
    return format_env(env, pairs, config.env, config.var_format())


def format_env(env: dict[str, str], pairs: list[str], extra: dict[str, Any] | None,
               fmt: str) -> str:
    """Packer's variables (``env``) plus the user's ``KEY=VALUE`` pairs and ``env`` map,
    sorted by name, each through ``fmt``. Single quotes in the user's values are closed,
    escaped and reopened so ``'%s'`` quoting holds."""
    env = dict(env)
    for kv in pairs:
        key, _, value = kv.partition("=")
        env[key] = value.replace("'", "'\"'\"'")
    for key, value in (extra or {}).items():
        env[key] = str(value).replace("'", "'\"'\"'")
    if fmt.count("%") == 2 and fmt.count("%s") == 2:  # the usual formats, without Go printf
        before, between, after = fmt.split("%s")
        return "".join(before + k + between + env[k] + after for k in sorted(env))
    return "".join(go_sprintf(fmt, k, env[k]) for k in sorted(env))


def write_inline_script(config: ShellLocalConfig, ctx: BuildContext,
                        data: dict[str, Any]) -> str:
    """Render the inline lines into a ledger-tracked temp script (mode 0700); its path."""
    body = [f"#!{config.shebang()}\n"]
    for line in config.inline_lines():
        body.append(render_runtime(ctx, line, data, "inline command") + "\n")
    ext = config.extension()
    return ctx.temp_file(prefix="packer-shell", suffix=f".{ext}" if ext else "",
                         content="".join(body).encode("utf-8", "surrogateescape"), mode=0o700)


def exec_argv(config: ShellLocalConfig, ctx: BuildContext, data: dict[str, Any],
              script: str, env_vars: str) -> list[str]:
    values = dict(data)
    values.update(Vars=env_vars, Script=script, Command=script)
    return [render_runtime(ctx, part, values, "execute_command")
            for part in config.exec_argv_template()]


def run_shell_local(config: ShellLocalConfig, ctx: BuildContext, ui: StageUI,
                    data: dict[str, Any] | None) -> None:
    """Run every script (or the inline one) in turn; raise StepError on a bad exit code."""
    from ..sdk.communicator import CommunicatorError
    from .communicators.local import run_process

    data = dict(data or {})
    if config.only_on and runtime_os() not in config.only_on:
        ui.say("Skipping shell-local due to runtime OS")  # Packer's words, for CI logs
        return
    ctx.cancel.check()

    scripts = config.script_paths()
    temps: list[str] = []
    try:
        if not scripts:
            temps.append(write_inline_script(config, ctx, data))
            scripts = list(temps)
        env_vars = flatten_env_vars(config, ctx, data)
        child_env = dict(os.environ)
        if ctx.run_id:
            child_env["PACKER_RUN_UUID"] = ctx.run_id
        for script in scripts:
            ctx.cancel.check()
            abs_script = os.path.abspath(script)
            if config.use_linux_pathing:
                abs_script = windows_to_wsl_path(abs_script)
            argv = exec_argv(config, ctx, data, abs_script, env_vars)
            ui.say(f"Running local shell script: {script}")
            try:
                code = run_process(argv, ui.output, ctx.cancel, env=child_env, ledger=ctx.ledger,
                                   cwd=getattr(ctx.options, "workdir", None))
            except CommunicatorError as e:
                ui.error(str(e))
                raise StepError(f"could not run script {abs_script}: {e}") from e
            if ctx.cancel.cancelled:
                raise Cancelled(ctx.cancel.reason or "cancelled")
            allowed = config.exit_codes()
            if code not in allowed:
                raise StepError(f"Script exited with non-zero exit status: {code}. "
                                f"Allowed exit codes are: [{' '.join(map(str, allowed))}]")
    finally:
        for path in temps:
            ctx.remove_temp(path)
