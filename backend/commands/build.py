"""``kiln build``: its flags, and the build in a terminal: console output, signals, prompts,
exit code."""

from __future__ import annotations

import os
import signal
import sys
import threading

from ..api import ConsoleRenderer, JsonEventWriter, Options, Writer, open_private
from ..template.errors import TemplateError
from .flags import COMMON, Flags, UsageError, one_template, options_from

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
    path = one_template(flags, BUILD_HELP)
    options = options_from(flags)
    options.machine_readable = machine
    if flags.get("cache") is not None:
        options.cache = bool(flags.get("cache"))
    rebuild = str(flags.get("rebuild-from") or "").strip()
    if rebuild.isdigit() and int(rebuild) < 1:
        raise UsageError(f'invalid value "{rebuild}" for -rebuild-from: provisioners count from 1')
    options.rebuild_from = rebuild
    options.preflight = bool(flags.get("preflight", True))
    return run_build(path, options, timings=bool(flags.get("timings", True)))


PROMPTS = {
    "retry": "[r] retry this provisioner (the template is re-read from disk)",
    "skip": "[s] skip it and carry on",
    "cleanup": "[c] clean up and exit",
    "abort": "[a] abort, keeping the machine for inspection",
    "matched": "[m] ",
    "from-changed": "[f] ",
}


class TerminalAsker:
    """Answers paused builds from the terminal, one question at a time."""

    def __init__(self, session, console: ConsoleRenderer, machine: bool):
        self.session = session
        self.console = console
        self.machine = machine
        self.lock = threading.Lock()

    def __call__(self, runner, question: dict) -> None:
        threading.Thread(target=self._ask, args=(runner, question), daemon=True).start()

    def _ask(self, runner, q: dict) -> None:
        with self.lock:
            choices = q["choices"]
            default = "cleanup" if "cleanup" in choices else choices[0]
            if self.machine or sys.stdin is None or sys.stdin.closed:
                runner.answer(default)
                return
            w = self.console.w
            if choices == ["continue"]:
                w.write(f"==> {q['build']}: {q['prompt']} ")
            else:
                w.write(f"==> {q['build']}: {q['prompt']}: {q['error']}\n")
                details = q.get("details") or {}
                w.write("".join(f"    {PROMPTS[c]}{details.get(c, '')}\n" for c in choices
                                if c in PROMPTS))
                w.write(f"==> {q['build']}: your choice [{'/'.join(c[0] for c in choices)}]? ")
            while True:
                try:
                    line = sys.stdin.readline()
                except (OSError, ValueError):
                    line = ""
                if not sys.stdin.isatty():  # a typed answer ends the line on a terminal
                    w.write("\n")
                if not line:  # no terminal, or end of input: Packer treats that as clean up
                    runner.answer(default)
                    return
                text = line.strip().lower()
                if choices == ["continue"]:
                    runner.answer("continue")
                    return
                pick = [c for c in choices if text and c.startswith(text)]
                if not text:
                    pick = [default]
                if len(pick) == 1 and runner.answer(pick[0]):
                    return
                w.write(f'Incorrect input: "{line.strip()}"; choose one of {", ".join(choices)}: ')


def no_builds_warning(template, options: Options) -> str:
    names = ", ".join(b.name for b in template.builds)
    if not names:
        return "the template defines no builds; nothing was built"
    return (f"-only/-except selected no build, so nothing was built; the builds are: {names}")


def run_build(path: str, options: Options, timings: bool = True) -> int:
    machine = options.machine_readable
    events_to_stdout = options.events == "-"
    writer = Writer(sys.stderr if events_to_stdout else sys.stdout)
    console = ConsoleRenderer(writer, color=options.color, machine=machine,
                              timestamps=options.timestamp_ui, debug=options.debug)
    writers = [writer]
    try:
        return _run_build(path, options, timings, console, writers)
    finally:
        # the console is written by a thread: let it finish (a Ctrl-C stops the wait)
        for w in writers:
            _drain(w)
        for w in writers:
            if w.error is not None:
                where = f"; the build logs have everything: {console.log_dir}" if console.log_dir else ""
                _stderr(f"Warning: output could not be written: {w.error.strerror or w.error}{where}")
            if w.error is not None or w.closed:
                silence(w.stream)


def _stderr(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


def silence(stream) -> None:
    """Point a stream whose reader is gone (or whose disk is full) at /dev/null, so the
    interpreter's last flush at exit cannot fail with a traceback."""
    try:
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


#: what each stopping signal is called in the console (a closed terminal sends SIGHUP)
SIGNAL_WORDS = {signal.SIGINT: "interrupt", signal.SIGTERM: "terminated",
                signal.SIGHUP: "hangup"}


def stop_signals() -> list[int]:
    """SIGINT and SIGTERM always (as Go's signal.Notify, even when started ignored);
    SIGHUP unless the user asked for it to be ignored (``nohup``)."""
    sigs = [signal.SIGINT, signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        sigs.append(signal.SIGHUP)
    return sigs


def _drain(w: Writer) -> None:
    stop: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: stop.append(signum))
           for s in stop_signals()}
    try:
        while not stop and not w.drain(0.2):
            pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _run_build(path: str, options: Options, timings: bool, console: ConsoleRenderer,
               writers: list[Writer]) -> int:
    events_to_stdout = options.events == "-"
    events_file = None
    if options.events and not events_to_stdout:
        try:  # before anything else: a typo in the path fails at once
            events_file = open_private(options.events, truncate=True)
        except OSError as e:
            _stderr(f"Error: cannot write the events file {options.events}: {e.strerror or e}")
            return 1
    try:
        return _build_with(path, options, timings, console, writers, events_file)
    finally:
        if events_file is not None and not events_file.closed:
            try:
                events_file.close()
            except OSError:
                pass


def _build_with(path, options: Options, timings: bool, console: ConsoleRenderer,
                writers: list[Writer], events_file) -> int:
    from ..api import Session, StateDirError, load_template

    machine = options.machine_readable
    events_to_stdout = options.events == "-"
    template = None
    # Loading may take a while (data sources call AWS or HTTP): an interrupt there stops
    # it at once; nothing has been created yet, so there is nothing to clean up.
    def interrupted(signum, frame):
        raise KeyboardInterrupt

    sigs = stop_signals()
    before = {s: signal.signal(s, interrupted) for s in sigs}
    try:
        template = load_template(path, options, evaluate_data=True)
        session = Session(template, options)
    except StateDirError as e:
        _stderr(f"Error: {e}")
        return 1
    except KeyboardInterrupt:
        console.say_plain("Interrupted while reading the template; nothing was built.",
                          error=True)
        return 1
    except TemplateError as e:
        from .messages import fail

        fail(machine, e, template.mask if template is not None else None)
        return 1
    except OSError as e:
        print(f"Error: cannot read {path}: {e.strerror or e}", file=sys.stderr)
        return 1
    finally:
        for s, h in before.items():
            signal.signal(s, h)
    for w in list(template.warnings) + session.warnings:
        console.say_plain(f"Warning: {template.mask(w)}")
    if not session.builds:  # as Packer: nothing to run is no failure
        console.say_plain(f"Warning: {no_builds_warning(template, options)}")
    os.environ["PACKER_RUN_UUID"] = session.run_id
    console.log_paths = session.log_paths
    console.log_dir = session.log_dir
    events = None
    if options.events:
        if events_to_stdout:
            out = Writer(sys.stdout)
            writers.insert(0, out)
            events = JsonEventWriter(writer=out)
        else:
            events = JsonEventWriter(events_file, close=True)
        session.bus.subscribe(events)
    session.bus.subscribe(console)
    session.on_question = TerminalAsker(session, console, machine)

    # The handler only records the signal: printing or cancelling inside it could
    # deadlock on a lock the interrupted main thread already holds.
    received: list[int] = []

    def on_signal(signum, frame):
        received.append(signum)

    def handle_signals(done: int) -> int:
        for signum in received[done:]:
            word = SIGNAL_WORDS.get(signum, "terminated")
            if done == 0:
                # cancel first: the console may be stuck behind a reader that went quiet
                threading.Thread(target=session.cancel, args=(word,), daemon=True).start()
                console.say_plain(f"Cancelling build after receiving {word}", error=True)
            else:
                console.say_plain("Cleanup is running and will finish; Kiln exits when it is done.",
                                  error=True)
            done += 1
        return done

    old = {s: signal.signal(s, on_signal) for s in sigs}
    handled = 0
    try:
        session.start()
        while session.wait(0.2) is None:
            handled = handle_signals(handled)
        handle_signals(handled)
    finally:
        for s, h in old.items():
            # after an interrupt Kiln is on its way out and its cleanup has run: a further
            # Ctrl-C while it prints the summary and exits changes nothing, rather than
            # killing it (exit -2); ignored, not a Python handler, since the interpreter
            # puts back the default for those as it shuts down
            signal.signal(s, signal.SIG_IGN if received else h)
    result = session.result
    console.summary(session, result, timings=timings)
    if events is not None:
        try:
            events.close()
        except OSError as e:
            session.bus.failed_views.setdefault(events.view_name, e)
    for what, e in session.bus.failed_views.items():  # the build went on without them
        why = getattr(e, "strerror", None) or e
        _stderr(f"Warning: {what} could not be written: {why}")
    for w in session.warnings:
        if w.startswith("old runs were not pruned"):
            _stderr(f"Warning: {w}")
    return result.exit_code
