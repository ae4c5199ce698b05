"""The ``kiln`` command line: Packer's flags and exit codes, plus Kiln's own commands.

Only the standard library is imported here; each command imports what it needs
when it runs, so ``kiln --help`` and ``kiln validate`` stay fast.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

USAGE = """\
Usage: kiln [--version] [--help] <command> [args]

Build machine images from Packer-compatible templates (JSON, YAML, HCL2),
with a live terminal dashboard.

Commands:
    (none)          open the dashboard on the templates in this directory
    tui             open the dashboard: kiln tui [DIR|TEMPLATE]
    build           build image(s) from a template
    validate        check that a template is valid
    inspect         see the components of a template
    history         list recent runs recorded next to a template
    cleanup         remove what interrupted or killed runs left behind
    cache           the provisioner cache of docker builds: ls, prune, why
    dev             build a docker template's provisioners, rerun them on every save
    iam             the least-privilege IAM policy a template needs (iam policy),
                    or check the credentials hold it (iam check)
    fmt             rewrite HCL2 templates in the canonical format
    hcl2_upgrade    convert a JSON template to HCL2
    version         print the version

Run 'kiln <command> -help' for the flags of a command. Flags follow Packer's
syntax: -flag, --flag, -flag=value or -flag value; booleans as -flag or
-flag=false. -machine-readable may appear anywhere.
"""

BUILD_HELP = """\
Usage: kiln build [options] TEMPLATE

  Build every build in TEMPLATE (a .json, .yaml/.yml, .pkr.hcl file or a
  directory of .pkr.hcl files), in parallel.

Options (as Packer's):
  -color=false                 Disable colour output (so do PACKER_NO_COLOR and NO_COLOR).
  -debug                       Run builds one at a time and pause before each stage.
  -except=foo,bar,baz          Run all builds and post-processors except these.
  -only=foo,bar,baz            Build only these builds.
  -force                       Force a build to continue if artifacts exist; deletes them.
  -on-error=[cleanup|abort|ask|run-cleanup-provisioner]
                               What to do when a build fails (default: cleanup).
                               ask: pause with the machine up and offer to retry the
                               failed provisioner (re-read from disk), skip it,
                               clean up, or abort keeping the machine.
  -parallel-builds=N           Run at most N builds at once (0 = no limit).
  -timestamp-ui                Prefix each line with a timestamp.
  -var 'key=value'             Set a template variable (repeatable).
  -var-file=path               JSON file of variables (repeatable).
  -machine-readable            Packer's machine-readable output.

Kiln options:
  -events=FILE|-               Write every event as JSON Lines (schema kiln.events/1).
  -state-dir=DIR               Where history and logs go (default: .kiln next to the template).
  -timings=false               Do not print the per-stage timing summary.
  -cache=false                 Docker builds: neither reuse nor store provisioner results
                               (default on; $KILN_CACHE=false turns it off by default).
  -rebuild-from=N|NAME         Docker builds: run provisioner N (from 1) or NAME and every
                               one after it, whatever is cached.
  -preflight=false             Skip the IAM permission check amazon builds start with
                               (see kiln iam check).

Exit codes: 0 success, 1 any build failed or was interrupted.
"""

VALIDATE_HELP = """\
Usage: kiln validate [options] TEMPLATE

  Check TEMPLATE: syntax, variables, every builder, provisioner and
  post-processor configuration. All problems are listed at once as
  file:line:col: key.path: message. Exit 0 when valid, 1 otherwise.

Options:
  -syntax-only           Only check the syntax.
  -evaluate-datasources  Run HCL2 data sources (amazon-ami: AWS calls); without it
                         their outputs are unknown and checked as far as possible.
  -only=foo,bar / -except=foo,bar   Validate only (or all but) these builds.
  -var 'key=value' / -var-file=path
  -machine-readable
"""

INSPECT_HELP = """\
Usage: kiln inspect [options] TEMPLATE

  Show the variables, builders, provisioners and post-processors of TEMPLATE.
  Sensitive variables print as <sensitive>.

Options:
  -var 'key=value' / -var-file=path
  -machine-readable
"""

HISTORY_HELP = """\
Usage: kiln history [options] [TEMPLATE|DIR]

  List recent runs recorded in .kiln/history.db next to TEMPLATE (or in DIR).
  A run whose process is gone without finishing (kill -9, a crash) shows as
  crashed. After each build only the newest 100 runs and their logs are kept
  ($KILN_HISTORY_KEEP sets how many; 0 keeps everything).

Options:
  -n=20        How many runs.
  -state-dir=DIR
  -json        Print JSON.
  -prune       Remove all but the newest runs (-keep) and their logs now.
  -keep=N      With -prune: how many runs to keep (default: $KILN_HISTORY_KEEP or 100).
"""

CLEANUP_HELP = """\
Usage: kiln cleanup [options]

  Remove resources that interrupted or killed runs left behind: containers,
  cloud instances, key pairs, security groups, unfinished images, temp files.
  The ledger lives in $KILN_STATE_DIR (default ~/.local/state/kiln).

Options:
  -all         Also remove machines kept on purpose (-on-error=abort, or k in the
               dashboard), even while the dashboard that kept them is open.
  -dry-run     Only list what would be removed.
"""

TUI_HELP = """\
Usage: kiln [tui] [DIR|TEMPLATE]

  Open the dashboard on the templates in DIR (default: the current directory).
  Press ? in the dashboard for its keys.
"""


class UsageError(Exception):
    pass


class Flags:
    """Go-style flag parsing: -x, --x, -x=v, -x v; booleans only take -x or -x=bool."""

    def __init__(self, spec: dict[str, str]):
        self.spec = spec  # name -> "bool" | "str" | "list" | "kv"
        self.values: dict[str, object] = {}
        self.args: list[str] = []

    def parse(self, argv: list[str]) -> Flags:
        i = 0
        while i < len(argv):
            a = argv[i]
            if a == "--":
                self.args.extend(argv[i + 1:])
                break
            if not a.startswith("-") or a == "-":
                self.args.append(a)
                i += 1
                continue
            name = a.lstrip("-")
            value: str | None = None
            if "=" in name:
                name, value = name.split("=", 1)
            kind = self.spec.get(name)
            if kind is None:
                raise UsageError(f"flag provided but not defined: -{name}")
            if kind == "bool":
                if value is None:
                    self.values[name] = True
                elif value.lower() in ("1", "t", "true"):
                    self.values[name] = True
                elif value.lower() in ("0", "f", "false"):
                    self.values[name] = False
                else:
                    raise UsageError(f'invalid boolean value "{value}" for -{name}')
                i += 1
                continue
            if value is None:
                if i + 1 >= len(argv):
                    raise UsageError(f"flag needs an argument: -{name}")
                value = argv[i + 1]
                i += 2
            else:
                i += 1
            if kind == "list":
                cur = self.values.setdefault(name, [])
                cur.extend(x for x in value.split(",") if x)  # type: ignore[union-attr]
            elif kind == "multi":
                self.values.setdefault(name, []).append(value)  # type: ignore[union-attr]
            else:
                self.values[name] = value
        return self

    def get(self, name: str, default=None):
        return self.values.get(name, default)


COMMON = {"var": "multi", "var-file": "multi", "only": "list", "except": "list", "h": "bool",
          "help": "bool"}


def _options(flags: Flags):
    from backend.engine.prepare import Options

    vars_: dict[str, str] = {}
    for kv in flags.get("var", []):
        if "=" not in kv:
            raise UsageError(f"No '=' value in arg: {kv} (expected -var key=value)")
        k, v = kv.split("=", 1)
        vars_[k] = v
    on_error = flags.get("on-error", "cleanup") or "cleanup"
    if on_error not in ("cleanup", "abort", "ask", "run-cleanup-provisioner"):
        raise UsageError(f'invalid value "{on_error}" for -on-error: expected one of '
                         "[cleanup abort ask run-cleanup-provisioner]")
    try:
        parallel = int(flags.get("parallel-builds", 0) or 0)
    except ValueError:
        raise UsageError("-parallel-builds expects a number") from None
    return Options(
        only=tuple(flags.get("only", [])),
        except_=tuple(flags.get("except", [])),
        force=bool(flags.get("force", False)),
        on_error=on_error,
        debug=bool(flags.get("debug", False)),
        parallel_builds=parallel,
        timestamp_ui=bool(flags.get("timestamp-ui", False)),
        color=bool(flags.get("color", True)),
        vars=vars_,
        var_files=tuple(flags.get("var-file", [])),
        state_dir=flags.get("state-dir"),
        events=flags.get("events"),
    )


def _positive(flags: Flags, name: str, default: int) -> int:
    raw = flags.get(name)
    if raw is None:
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise UsageError(f'invalid value "{raw}" for flag -{name}: expected a whole number') from None
    if value < 1:
        raise UsageError(f'invalid value "{raw}" for flag -{name}: expected 1 or more')
    return value


def _one_template(flags: Flags, help_text: str) -> str:
    if len(flags.args) != 1:
        raise UsageError(help_text)
    return flags.args[0]


def _print_problems(err, out=None, mask=None) -> None:
    out = out or sys.stderr
    from backend.template.errors import TemplateError, printable

    if mask is not None and isinstance(err, TemplateError):
        from backend.template.errors import Problem

        err = TemplateError([Problem(p.loc, mask(p.message), p.severity, mask(p.snippet))
                             for p in err.problems])
    if isinstance(err, TemplateError):
        errors = [p for p in err.problems if p.severity == "error"]
        n = len(errors)
        out.write(f"Error: the template has {n} problem{'s' if n != 1 else ''}:\n\n" if n > 1 else "Error: ")
        for p in err.problems:
            out.write(printable(p.format()) + "\n")
    else:
        out.write(f"Error: {printable(str(err))}\n")
    out.flush()


# -- validate ---------------------------------------------------------------------------


def cmd_validate(argv: list[str], machine: bool) -> int:
    flags = Flags({**COMMON, "syntax-only": "bool", "no-warn-undeclared-var": "bool",
                   "evaluate-datasources": "bool"}).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(VALIDATE_HELP)
        return 0
    path = _one_template(flags, VALIDATE_HELP)
    from backend.engine.prepare import Preparer, select_builds
    from backend.template.errors import TemplateError
    from backend.template.loader import load_template

    options = _options(flags)
    template = None
    try:
        template = load_template(path, options, syntax_only=bool(flags.get("syntax-only")),
                                 evaluate_data=bool(flags.get("evaluate-datasources")))
        if flags.get("syntax-only"):
            _say(machine, "Syntax-only check passed. Everything looks okay.")
            return 0
        builds = select_builds(template, options.only, options.except_)
        if (options.only or options.except_) and not builds:
            names = ", ".join(b.name for b in template.builds)
            _say(machine, f"Warning: -only/-except selected no build; the builds are: {names}")
        prep = Preparer(template, options)
        prep.prepare(builds)
        for w in list(template.warnings) + prep.warnings:
            _say(machine, f"Warning: {template.mask(w)}")
        if prep.problems:
            raise TemplateError(prep.problems)
    except TemplateError as e:
        _fail(machine, e, template.mask if template is not None else None)
        return 1
    except OSError as e:
        _fail(machine, f"cannot read {path}: {e.strerror or e}")
        return 1
    _say(machine, "The configuration is valid.")
    return 0


def _say(machine: bool, text: str) -> None:
    if machine:
        import time

        from backend.engine.console import machine_escape

        print(f"{int(time.time())},,ui,say,{machine_escape(text)}")
    else:
        from backend.template.errors import printable

        print(printable(text))


def _fail(machine: bool, err, mask=None) -> None:
    if machine:
        import io
        import time

        from backend.engine.console import machine_escape

        buf = io.StringIO()
        _print_problems(err, buf, mask)
        print(f"{int(time.time())},,ui,error,{machine_escape(buf.getvalue().rstrip())}")
    else:
        _print_problems(err, mask=mask)


# -- inspect -----------------------------------------------------------------------------


def cmd_inspect(argv: list[str], machine: bool) -> int:
    flags = Flags(COMMON).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(INSPECT_HELP)
        return 0
    path = _one_template(flags, INSPECT_HELP)
    from backend.template.errors import TemplateError
    from backend.template.loader import load_template

    options = _options(flags)
    try:
        t = load_template(path, options, syntax_only=True)
    except TemplateError as e:
        _fail(machine, e)
        return 1
    from backend.engine.inspect import render_inspect
    from backend.template.errors import printable

    sys.stdout.write(render_inspect(t, machine) if machine else printable(render_inspect(t)))
    return 0


# -- build --------------------------------------------------------------------------------


def cmd_build(argv: list[str], machine: bool) -> int:
    flags = Flags({**COMMON, "force": "bool", "debug": "bool", "color": "bool", "on-error": "str",
                   "parallel-builds": "str", "parallel": "bool", "timestamp-ui": "bool", "events": "str",
                   "state-dir": "str", "timings": "bool", "warn-on-undeclared-var": "bool",
                   "cache": "bool", "rebuild-from": "str",
                   "ignore-prerelease-plugins": "bool", "use-sequential-evaluation": "bool",
                   "preflight": "bool"}).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(BUILD_HELP)
        return 0
    path = _one_template(flags, BUILD_HELP)
    options = _options(flags)
    options.machine_readable = machine
    if flags.get("cache") is not None:
        options.cache = bool(flags.get("cache"))
    rebuild = str(flags.get("rebuild-from") or "").strip()
    if rebuild.isdigit() and int(rebuild) < 1:
        raise UsageError(f'invalid value "{rebuild}" for -rebuild-from: provisioners count from 1')
    options.rebuild_from = rebuild
    options.preflight = bool(flags.get("preflight", True))
    from backend.engine.runcli import run_build

    return run_build(path, options, timings=bool(flags.get("timings", True)))


# -- history / cleanup ------------------------------------------------------------------------


def cmd_history(argv: list[str], machine: bool) -> int:
    flags = Flags({"n": "str", "state-dir": "str", "json": "bool", "h": "bool", "help": "bool",
                   "prune": "bool", "keep": "str"}).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(HISTORY_HELP)
        return 0
    import json
    import time

    from backend.engine.history import default_keep, prune, recent_runs
    from backend.engine.session import default_state_dir
    from backend.template.errors import printable

    target = flags.args[0] if flags.args else "."
    state = flags.get("state-dir") or (
        os.path.join(target, ".kiln") if os.path.isdir(target) and not target.endswith(".kiln")
        else default_state_dir(target) if not target.endswith(".kiln") else target)
    if flags.get("prune"):
        keep = _positive(flags, "keep", default_keep() or 100)
        runs_gone, dirs_gone = prune(state, keep)
        print(f"Pruned {runs_gone} run{'s' if runs_gone != 1 else ''} and {dirs_gone} log "
              f"director{'ies' if dirs_gone != 1 else 'y'} from {state}; the newest {keep} "
              "runs are kept.")
        return 0
    if flags.get("keep") is not None:
        raise UsageError("-keep goes with -prune")
    limit = _positive(flags, "n", 20)
    runs = recent_runs(os.path.join(state, "history.db"), limit)
    if flags.get("json"):
        print(json.dumps(runs, indent=2))
        return 0
    if not runs:
        print(f"No runs recorded in {state}")
        return 0
    for r in runs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started"]))
        dur = f"{r['finished'] - r['started']:.1f}s" if r["finished"] else "-"
        # names, errors and paths come from templates: no control character gets through
        print(printable(f"{when}  {r['status']:<10} {dur:>8}  {r['id'][:8]}  "
                        f"{os.path.relpath(r['template'])}", False))
        for b in r["builds"]:
            bd = f"{b['duration']:.1f}s" if b["duration"] is not None else "-"
            err = f"  {b['error']}" if b["error"] else ""
            print(printable(f"    {b['name']:<24} {b['status']:<10} {bd:>8}{err}", False))
            if b.get("kept"):
                hint = f": {b['access_hint']}" if b.get("access_hint") else ""
                print(printable(f"    {'':<24} machine kept{hint}", False))
            if b["log"]:
                print(printable(f"    {'':<24} log: {b['log']}", False))
    return 0


def cmd_cleanup(argv: list[str], machine: bool) -> int:
    flags = Flags({"all": "bool", "dry-run": "bool", "h": "bool", "help": "bool"}).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(CLEANUP_HELP)
        return 0
    import sqlite3
    import uuid

    from backend.engine.ledger import Ledger, orphaned, reap

    try:
        ledger = Ledger("cleanup-" + str(uuid.uuid4()))
    except (OSError, sqlite3.Error) as e:
        from backend.engine.session import ledger_state_dir_name

        print(f"Error: cannot open the resource ledger in {ledger_state_dir_name()}: "
              f"{getattr(e, 'strerror', None) or e}", file=sys.stderr)
        return 1
    entries = orphaned(ledger, include_kept=bool(flags.get("all")))
    if not entries:
        kept = [e for e in orphaned(ledger, include_kept=True) if e.kept]
        print("Nothing to clean up." if not kept else
              f"Nothing to clean up; {len(kept)} resource{'s' if len(kept) != 1 else ''} kept "
              "on purpose stay (kiln cleanup -all removes them too):")
        for e in kept:
            print(f"  kept {e.kind} {e.ident}" + (f" (build {e.build})" if e.build else ""))
        return 0
    failed = 0
    for e in entries:
        label = f"{e.kind} {e.ident}" + (f" (build {e.build})" if e.build else "")
        if flags.get("dry-run"):
            print(f"would remove {label}")
            continue
        try:
            reap(e)
        except Exception as ex:  # keep going; report at the end
            failed += 1
            print(f"could not remove {label}: {ex}", file=sys.stderr)
            continue
        ledger.release(e.id)
        print(f"removed {label}")
    return 1 if failed else 0


DEV_HELP = """\
Usage: kiln dev [options] TEMPLATE

  Build the docker builds of TEMPLATE up to the end of their provisioners (no commit,
  no post-processors), keep the container, and watch the template and every local input
  of every provisioner. On a save (after 0.5 s without another change), build again:
  the provisioner cache starts the new container from the image before the first
  provisioner whose inputs changed and runs only from there. Editor swap and backup
  files and .git never count; saves during a run cause one rerun after it.
  q or Ctrl-C stops and removes the container; `kiln cleanup` removes it if kiln dev
  was killed.

Options:
  -var 'key=value' / -var-file=path / -only=.. / -except=..
  -state-dir=DIR     Where history and logs go (default: .kiln next to the template).
  -color=false
"""


def cmd_dev(argv: list[str], machine: bool) -> int:
    flags = Flags({**COMMON, "state-dir": "str", "color": "bool"}).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(DEV_HELP)
        return 0
    path = _one_template(flags, DEV_HELP)
    options = _options(flags)
    from backend.engine.dev import run_dev

    return run_dev(path, options)


def cmd_cache(argv: list[str], machine: bool) -> int:
    from backend.engine.cachecmd import CacheUsageError, run

    try:
        return run(argv)
    except CacheUsageError as e:
        raise UsageError(str(e)) from None


def cmd_version(argv: list[str], machine: bool) -> int:
    from backend import __version__
    from backend.template.legacy import PACKER_COMPAT_VERSION

    if machine:
        import time

        print(f"{int(time.time())},,version,{__version__}")
    else:
        print(f"Kiln v{__version__} (Packer {PACKER_COMPAT_VERSION} template compatible)")
    return 0


def cmd_tui(argv: list[str], machine: bool) -> int:
    flags = Flags({"h": "bool", "help": "bool", "var": "multi", "var-file": "multi"}).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(TUI_HELP)
        return 0
    target = flags.args[0] if flags.args else "."
    vars_ = dict(kv.split("=", 1) for kv in flags.get("var", []) if "=" in kv)
    from tui.app import run_app

    return run_app(target, vars=vars_, var_files=tuple(flags.get("var-file", [])))


def cmd_iam(argv: list[str], machine: bool) -> int:
    from backend.iam.cli import main as iam_main

    # this module, as it runs (``python -m backend.cli`` makes it __main__): its UsageError
    return iam_main(argv, machine, sys.modules[__name__])


def cmd_fmt(argv: list[str], machine: bool) -> int:
    from backend.template.hcl2_fmt import main as fmt_main

    return fmt_main(argv)


def cmd_hcl2_upgrade(argv: list[str], machine: bool) -> int:
    from backend.template.hcl2_upgrade import main as upgrade_main

    return upgrade_main(argv)


COMMANDS: dict[str, Callable[[list[str], bool], int]] = {
    "build": cmd_build,
    "validate": cmd_validate,
    "inspect": cmd_inspect,
    "history": cmd_history,
    "cleanup": cmd_cleanup,
    "cache": cmd_cache,
    "dev": cmd_dev,
    "iam": cmd_iam,
    "version": cmd_version,
    "tui": cmd_tui,
    "fmt": cmd_fmt,
    "hcl2_upgrade": cmd_hcl2_upgrade,
}


def main(argv: list[str] | None = None) -> int:
    """Run a command; whatever goes wrong with the terminal or the disk, a message and an
    exit code, never a traceback."""
    try:
        code = _main(argv)
    except BrokenPipeError:  # `kiln ... | head`: the reader has what it wanted
        _quiet(sys.stdout)
        return 1
    except OSError as e:
        if _stdout_failed(e):
            _report_stdout(e)
        else:
            where = f" {e.filename}" if e.filename else ""
            _err(f"Error:{where}: {e.strerror or e}" if where else f"Error: {e.strerror or e}")
        return 1
    except Exception as e:
        if type(e).__module__ != "sqlite3":
            raise
        _err(f"Error: the Kiln database cannot be used: {e}")
        return 1
    # what print() left in the buffer must reach the reader too, or the command failed
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet(sys.stdout)
    except OSError as e:
        _report_stdout(e)
        return code or 1
    return code


def _err(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        _quiet(sys.stderr)


def _quiet(stream) -> None:
    from backend.engine.runcli import silence

    silence(stream)


def _stdout_failed(e: OSError) -> bool:
    import errno

    return e.filename is None and e.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG,
                                               errno.EPIPE)


def _report_stdout(e: OSError) -> None:
    _quiet(sys.stdout)
    _err(f"Error: cannot write to standard output: {e.strerror or e}")


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    machine = False
    if "-machine-readable" in argv or "--machine-readable" in argv:
        machine = True
        argv = [a for a in argv if a not in ("-machine-readable", "--machine-readable")]
    if not argv:
        return cmd_tui([], machine)
    first = argv[0]
    if first in ("-h", "-help", "--help", "help"):
        print(USAGE)
        return 0
    if first in ("-v", "-version", "--version"):
        return cmd_version([], machine)
    if first.startswith("-"):
        print(USAGE, file=sys.stderr)
        print(f"Error: flags go after the command: {first}", file=sys.stderr)
        return 1
    cmd = COMMANDS.get(first)
    if cmd is None:
        if os.path.exists(first):
            return cmd_tui(argv, machine)
        print(USAGE, file=sys.stderr)
        print(f"Error: unknown command {first!r}", file=sys.stderr)
        return 127
    try:
        return cmd(argv[1:], machine)
    except UsageError as e:
        text = str(e)
        print(text if text.startswith("Usage") else f"Error: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
