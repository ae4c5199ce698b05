"""The shell provisioner: upload scripts to the machine and run them there.

Works over any communicator (local, docker, ssh). For each script (or one
script made from the ``inline`` lines): upload it to ``remote_path``, make it
executable, run the rendered ``execute_command`` with its output streamed,
check the exit status against ``valid_exit_codes``, then remove it. Upload and
start are retried on communicator errors until ``start_retry_timeout``; a
script that ran and failed is never retried here (``max_retries`` is the
engine's business).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...sdk.communicator import DISCONNECTED, CommunicatorError
from ...sdk.config import ConfigProblems, Deferred, Duration, opt
from ...sdk.plugin import Cancelled, PrepareContext, Provisioner, StepError
from ..shell_local_common import (
    HTTP_VARS,
    format_env,
    render_runtime,
    unusable_paths,
)

if TYPE_CHECKING:
    from ...sdk.context import BuildContext, StageUI

DEFAULT_SHEBANG = "/bin/sh -e"
DEFAULT_REMOTE_FOLDER = "/tmp"
DEFAULT_ENV_VAR_FORMAT = "%s='%s' "
DEFAULT_ENV_FILE_FORMAT = "export %s='%s'\n"
DEFAULT_EXECUTE_COMMAND = "chmod +x {{.Path}}; {{.Vars}} {{.Path}}"
DEFAULT_EXECUTE_COMMAND_ENV_FILE = "chmod +x {{.Path}}; . {{.EnvVarFile}} && {{.Path}}"
RETRY_INTERVAL = 2.0

# generated-data key -> (environment variable, value meaning "no HTTP server")
@dataclass
class ShellConfig:
    inline: list[str] = opt(default_factory=list, doc="commands, written to a temp script")
    script: str = opt("", doc="path of a local script to upload and run")
    scripts: list[str] = opt(default_factory=list, doc="paths of local scripts, run in order")
    environment_vars: list[str] = opt(default_factory=list, doc='"KEY=value" items')
    env: dict[str, str] = opt(default_factory=dict, doc="KEY: value map; wins over "
                              "environment_vars")
    env_var_format: str = opt("", doc="printf format of one variable (%s='%s' )")
    use_env_var_file: bool = opt(False, doc="pass variables in an uploaded file, not the command")
    execute_command: Deferred = opt(Deferred(""), doc="command that runs each script; "
                                    "default: chmod +x {{.Path}}; {{.Vars}} {{.Path}}")
    inline_shebang: str = opt("", doc="interpreter line of the inline script (/bin/sh -e)")
    remote_folder: str = opt("", doc="where scripts are uploaded (/tmp)")
    remote_file: str = opt("", doc="file name of the uploaded script (script_NNNN.sh)")
    remote_path: str = opt("", doc="full remote path; default remote_folder/remote_file")
    expect_disconnect: bool = opt(False, doc="a dropped connection is not an error (reboots)")
    valid_exit_codes: list[int] = opt(default_factory=lambda: [0], doc="exit codes that mean "
                                      "success")
    skip_clean: bool = opt(False, doc="leave the uploaded script on the machine")
    start_retry_timeout: Duration = opt(Duration(300), doc="how long to retry upload/start on "
                                        "connection errors (5m)")
    pause_after: Duration = opt(Duration(0), doc="wait this long after the scripts ran")
    binary: bool = opt(False, doc="upload scripts as they are (no CRLF -> LF conversion)")

    def __post_init__(self) -> None:
        # chosen once, as Packer does at prepare time, so every script uses the same path
        self._random_file = f"script_{random.randrange(9999)}.sh"
        self._env_file = f"varfile_{random.randrange(9999)}.sh"

    # -- effective values (the user's fields are never rewritten) ----------------------
    def inline_lines(self) -> list[str]:
        return list(self.inline)

    def script_paths(self) -> list[str]:
        if self.script:
            return [self.script]
        return list(self.scripts)

    def shebang(self) -> str:
        return self.inline_shebang or DEFAULT_SHEBANG

    def folder(self, comm: Any = None) -> str:
        if self.remote_folder:
            return self.remote_folder
        # on this host, a private directory instead of a guessable name in /tmp
        private = comm.private_folder() if comm is not None else None
        return private or DEFAULT_REMOTE_FOLDER

    def path(self, comm: Any = None) -> str:
        if self.remote_path:
            return self.remote_path
        return f"{self.folder(comm).rstrip('/') or ''}/{self.remote_file or self._random_file}"

    def env_file_path(self, comm: Any = None) -> str:
        return f"{self.folder(comm).rstrip('/')}/{self._env_file}"

    def var_format(self) -> str:
        if self.env_var_format:
            return self.env_var_format
        return DEFAULT_ENV_FILE_FORMAT if self.use_env_var_file else DEFAULT_ENV_VAR_FORMAT

    def command_template(self) -> str:
        if self.execute_command:
            return str(self.execute_command)
        return DEFAULT_EXECUTE_COMMAND_ENV_FILE if self.use_env_var_file else DEFAULT_EXECUTE_COMMAND

    def exit_codes(self) -> list[int]:
        return list(self.valid_exit_codes) if self.valid_exit_codes else [0]

    def check(self) -> None:
        problems: list[tuple[str, str]] = []
        if self.script and self.scripts:
            problems.append(("scripts", "script and scripts cannot both be given; put every "
                             "script in scripts"))
        has_script = bool(self.script or self.scripts)
        if not has_script and not self.inline:
            problems.append(("", "nothing to run: give inline commands, a script or scripts"))
        elif has_script and self.inline:
            problems.append(("inline", "inline cannot be combined with script or scripts; use "
                             "one or the other"))
        for kv in self.environment_vars:
            key, sep, _ = kv.partition("=")
            if not sep or not key:
                problems.append(("environment_vars", f"environment variable {kv!r} is not of "
                                 "the form KEY=value"))
        if self.start_retry_timeout < 0:
            problems.append(("start_retry_timeout", "start_retry_timeout cannot be negative"))
        if problems:
            raise ConfigProblems(problems)

    def check_scripts_exist(self) -> None:
        out = unusable_paths(self.script_paths(), "scripts" if self.scripts else "script",
                             "script", probe=_open_for_reading)
        if out:
            raise ConfigProblems(out)

    def describe(self) -> str:
        lines = [x for x in self.inline if x.strip()]
        if lines:
            more = f" (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
            return lines[0].strip().splitlines()[0] + more
        paths = self.script_paths()
        if paths:
            more = f" (+{len(paths) - 1} scripts)" if len(paths) > 1 else ""
            return paths[0] + more
        return ""


# -- helpers ---------------------------------------------------------------------------



def flatten_env_vars(config: ShellConfig, build_name: str, build_type: str,
                     data: dict[str, Any]) -> str:
    """Packer's variables plus the user's, sorted by name, each through env_var_format."""
    env = {"PACKER_BUILD_NAME": build_name, "PACKER_BUILDER_TYPE": build_type}
    for key, (name, unset) in HTTP_VARS.items():
        value = data.get(key)
        if value is not None and value != unset and value != "":
            env[name] = str(value)
    return format_env(env, list(config.environment_vars), config.env, config.var_format())


def _retry(ctx: BuildContext, ui: StageUI, timeout: float, what: str, fn):
    """Call ``fn`` until it stops raising CommunicatorError or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    warned = False
    while True:
        ctx.cancel.check()
        try:
            return fn()
        except CommunicatorError as e:
            if not getattr(e, "retryable", True) or time.monotonic() + RETRY_INTERVAL > deadline:
                raise StepError(f"{what}: {e}") from e
            if not warned:  # once: a retry loop may last minutes
                from ...template.golang import format_duration

                ui.error(f"{what}: {e}; retrying every {RETRY_INTERVAL:g}s for up to "
                         f"{format_duration(timeout)} (start_retry_timeout)")
                warned = True
            ctx.cancel.sleep(RETRY_INTERVAL)


# -- the provisioner ---------------------------------------------------------------------


class ShellProvisioner(Provisioner):
    type_name = "shell"
    Config = ShellConfig
    deferred_keys = ("execute_command",)

    config: ShellConfig

    def prepare(self, ctx: PrepareContext) -> list[str]:
        self.config.check_scripts_exist()
        return []

    def describe(self) -> str:
        return self.config.describe()

    def provision(self, ctx: BuildContext, ui: StageUI, comm: Any, data: dict[str, Any]) -> None:
        cfg = self.config
        data = dict(data or {})
        if comm is None:
            raise StepError("the shell provisioner needs a communicator, and the builder gave none")
        ctx.cancel.check()
        temps: list[str] = []
        try:
            scripts = cfg.script_paths()
            if not scripts:
                temps.append(self._inline_script(ctx, data))
                scripts = list(temps)
            env_vars = flatten_env_vars(cfg, ctx.build_name, ctx.build_type, data)
            env_file = ""
            if cfg.use_env_var_file:
                env_file = cfg.env_file_path(comm)
                def upload_env() -> None:
                    comm.upload(env_file, env_vars.encode("utf-8", "surrogateescape"),
                                mode=0o600)
                    _quiet(comm, f"chmod 0600 {env_file}", ctx)

                _retry(ctx, ui, cfg.start_retry_timeout, "Error uploading the environment file",
                       upload_env)
            for script in scripts:
                self._run_script(ctx, ui, comm, data, script, env_vars, env_file)
            if env_file and not cfg.skip_clean:
                self._remove(ctx, ui, comm, env_file)
        finally:
            for path in temps:
                ctx.remove_temp(path)
        if cfg.pause_after:
            from ...template.golang import format_duration

            ui.say(f"Pausing {format_duration(cfg.pause_after)} after this provisioner...")
            ctx.cancel.sleep(cfg.pause_after)

    def _inline_script(self, ctx: BuildContext, data: dict[str, Any]) -> str:
        cfg = self.config
        lines = [render_runtime(ctx, line, data, "inline command") for line in cfg.inline_lines()]
        text = "\n".join(lines) + "\n"
        if cfg.inline_shebang or not text.startswith("#!"):
            text = f"#!{cfg.shebang()}\n" + text
        return ctx.temp_file(prefix="packer-shell", content=text.encode("utf-8", "surrogateescape"),
                             mode=0o700)

    def _run_script(self, ctx: BuildContext, ui: StageUI, comm: Any, data: dict[str, Any],
                    script: str, env_vars: str, env_file: str) -> None:
        cfg = self.config
        remote = cfg.path(comm)
        ui.say(f"Provisioning with shell script: {script}")
        try:
            with open(script, "rb") as f:
                body = f.read()
        except OSError as e:
            raise StepError(f"cannot read script {script}: {e.strerror or e}") from e
        if not cfg.binary:
            body = body.replace(b"\r\n", b"\n")
        values = dict(data)
        values.update(Path=remote, Vars=env_vars, EnvVarFile=env_file)
        command = render_runtime(ctx, cfg.command_template(), values, "execute_command")
        on_this_host = getattr(comm, "type_name", "") == "local"

        def attempt() -> int:
            if on_this_host:
                # Kiln's local communicator: created with its mode in one step, owner-only
                # where others can write, so no chmod through a path in a shared directory
                comm.upload(remote, body, mode=0o755)
            else:
                # as Packer: the script arrives private (0600), then a chmod runs as the user
                # commands run as (docker's exec_user), its outcome not checked: if it fails,
                # running the script says why
                comm.upload(remote, body, mode=0o600)
                _quiet(comm, f"chmod 0755 {remote}", ctx)
            return comm.run(command, ui.output, ctx.cancel)

        code = _retry(ctx, ui, cfg.start_retry_timeout, "Error uploading or starting the script",
                      attempt)
        if ctx.cancel.cancelled:
            raise Cancelled(ctx.cancel.reason or "cancelled")
        disconnected = code == DISCONNECTED
        if disconnected:
            if not cfg.expect_disconnect and DISCONNECTED not in cfg.exit_codes():
                raise StepError(
                    "Script disconnected unexpectedly. If the script is meant to drop the "
                    'connection (a reboot, say), set "expect_disconnect": true or add '
                    f"{DISCONNECTED} to valid_exit_codes"
                )
        else:
            allowed = cfg.exit_codes()
            if code not in allowed:
                raise StepError(f"Script exited with non-zero exit status: {code}. "
                                f"Allowed exit codes are: [{' '.join(map(str, allowed))}]")
        if not cfg.skip_clean:
            try:
                self._remove(ctx, ui, comm, remote)
            except StepError as e:
                if not disconnected:
                    raise
                ui.error(f"{e} (the connection dropped, as expected)")

    def _remove(self, ctx: BuildContext, ui: StageUI, comm: Any, path: str) -> None:
        def attempt() -> int:
            return comm.run(f"rm -f {path}", ui.output, ctx.cancel)

        code = _retry(ctx, ui, self.config.start_retry_timeout,
                      f"Error removing temporary script at {path}", attempt)
        if code != 0:
            raise StepError(f"Error removing temporary script at {path}!")


def _quiet(comm: Any, command: str, ctx: BuildContext) -> int:
    """Run a helper command whose output Packer does not show."""
    return comm.run(command, lambda _stream, _lines: None, ctx.cancel)


def _open_for_reading(path: str) -> None:
    with open(path, "rb"):
        pass
