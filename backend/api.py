"""The one door the front ends use into the backend: the ``kiln`` commands and the dashboard
validate a template, open a session and read history through this module only (an
import-linter contract keeps it so).

Everything here is imported when first used (PEP 562 ``__getattr__``), so ``kiln --help``
and ``kiln validate`` load only what they touch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine.prepare import Options, PreparedBuild
    from .template.errors import Problem
    from .template.model import BuildDef, Template

#: what the front ends use, besides load_template, validate and Validation (loaded on first use)
LAZY = (
    # templates
    "Options", "select_builds", "Preparer",
    "render_inspect", "summary",
    # sessions and their output
    "Session", "StateDirError", "default_state_dir", "ledger_state_dir_name", "Event",
    "ConsoleRenderer", "JsonEventWriter", "Writer", "machine_escape", "open_private",
    # history
    "recent_runs", "stages_of", "stage_durations", "prune", "default_keep",
    # what runs left behind
    "Ledger", "orphaned", "reap", "pid_alive",
    # debug runs from the dashboard
    "NullTarget", "kept_machines", "provisioners_on_null", "DebugScope", "PostProcessorSession",
    "new_scratch", "prepare_postprocessor_run", "last_artifacts",
    # kiln dev (the loop; the terminal and the dashboard each say how one build runs)
    "DevLoop", "KeyReader", "check_builds", "describe_changes",
    # the least-privilege IAM policy (amazon) and the permission check
    "NoAwsError", "derive_template", "render_explain", "render_json", "render_terraform",
    "check_command",
    # the provisioner cache
    "CACHED_BUILDERS", "compute_keys", "Masker", "cachekeys", "docker_cache", "docker_client",
    "CommunicatorError",
)


def load_template(path: str, options: Options, syntax_only: bool = False,
                  evaluate_data: bool = False) -> Template:
    """Load a template with Kiln's plugins (``evaluate_data``: run HCL2 data sources, as a
    build does). Raises TemplateError."""
    from .engine.registry import load_template as load

    return load(path, options, syntax_only=syntax_only, evaluate_data=evaluate_data)


@dataclass
class Validation:
    """What ``kiln validate`` (and the dashboard's template list) learns about a template."""

    template: Template
    #: the builds -only/-except select
    builds: list[BuildDef] = field(default_factory=list)
    prepared: list[PreparedBuild] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def validate(path: str, options: Options, evaluate_data: bool = False) -> Validation:
    """Load ``path`` and prepare the selected builds as a build would, without running
    anything. Problems loading the template raise TemplateError; problems preparing the
    builds are in ``problems`` (every one, not only the first)."""
    from .engine.prepare import Preparer, select_builds

    template = load_template(path, options, evaluate_data=evaluate_data)
    builds = select_builds(template, options.only, options.except_)
    prep = Preparer(template, options)
    prepared = prep.prepare(builds)
    return Validation(template, builds, prepared, list(template.warnings) + list(prep.warnings),
                      list(prep.problems))


def iam_policy_texts(path: str, options: Options | None = None) -> tuple[str, str]:
    """(explanation, IAM JSON) of the least-privilege policy the template at ``path`` needs
    (the dashboard's ``i``). Raises TemplateError for a template with problems, NoAwsError
    when it uses no AWS builder or data source."""
    from .engine.prepare import Options as Opts
    from .plugins.amazon.iam.policy import derive_template, render_explain, render_json
    from .template.errors import TemplateError

    result = validate(path, options or Opts())
    if result.problems:
        raise TemplateError(result.problems)
    d = derive_template(result.template, result.prepared, force=(options or Opts()).force)
    return result.template.mask(render_explain(d)), result.template.mask(render_json(d))


def __getattr__(name: str) -> Any:
    if name in ("Options", "Preparer", "select_builds"):
        from .engine import prepare as module
    elif name in ("Session", "StateDirError", "default_state_dir", "ledger_state_dir_name"):
        from .engine import session as module
    elif name in ("ConsoleRenderer", "JsonEventWriter", "Writer", "machine_escape"):
        from .engine import console as module
    elif name == "open_private":
        from .engine import private as module
    elif name == "Event":
        from .engine import events as module
    elif name == "render_inspect":
        from .engine import inspect as module
    elif name == "summary":
        from .engine import retry as module
    elif name in ("recent_runs", "stages_of", "stage_durations", "prune", "default_keep"):
        from .engine import history as module
    elif name in ("Ledger", "orphaned", "reap", "pid_alive"):
        from .engine import ledger as module
    elif name in ("NullTarget", "kept_machines", "provisioners_on_null"):
        from .engine import debugruns as module
    elif name in ("DebugScope", "PostProcessorSession", "new_scratch", "prepare_postprocessor_run",
                  "last_artifacts"):
        from .engine import ppdebug as module
    elif name in ("DevLoop", "KeyReader", "check_builds", "describe_changes"):
        from .engine import dev as module
    elif name in ("NoAwsError", "derive_template", "render_explain", "render_json",
                  "render_terraform"):
        from .plugins.amazon.iam import policy as module
    elif name == "check_command":
        from .plugins.amazon.iam import preflight as module
    elif name in ("CACHED_BUILDERS", "compute_keys"):
        from .engine import provcache as module
    elif name == "Masker":
        from .engine import masking as module
    elif name == "cachekeys":
        from .engine import cachekeys as value
    elif name == "docker_cache":
        from .plugins.docker import cache as value
    elif name == "docker_client":
        from .plugins.docker.communicator import docker_client as value
    elif name == "CommunicatorError":
        from .sdk.communicator import CommunicatorError as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in ("cachekeys", "docker_cache", "docker_client", "CommunicatorError"):
        value = getattr(module, name)
    globals()[name] = value
    return value
