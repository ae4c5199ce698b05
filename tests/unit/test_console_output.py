"""What `kiln build` prints, line for line: the human console (colours, stderr, carriage
returns, post-processor targets, the summary and the stage timings), -machine-readable, the
JSON events, and a terminal or pipe that is slow, closed or full."""

from __future__ import annotations

import errno
import io
import json
import re
from pathlib import Path

import pytest
from kiln.backend.cli import main
from kiln.backend.engine.console import ConsoleRenderer, JsonEventWriter, Writer
from kiln.backend.engine.events import SCHEMA, Event

TIME = r"\d+ (?:milliseconds|microseconds|seconds)[0-9a-z ]*"


def template(tmp_path: Path, builders: int = 2, script: list[str] | None = None,
             post: list | None = None) -> Path:
    doc = {
        "builders": [{"type": "null", "name": f"b{i}", "communicator": "none"}
                     for i in range(builders)],
        "provisioners": [{"type": "shell-local", "inline": script or [
            "echo 'x,y'", "printf 'a\\rb\\n\\n'", "echo err >&2", "test {{build_name}} = b0"]}],
    }
    if post is not None:
        doc["builders"][0] = {"type": "file", "name": "b0", "target": str(tmp_path / "o.txt"),
                              "content": "abc"}
        doc["post-processors"] = post
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    return path


def build(capsys, path: Path, *flags: str) -> tuple[int, str]:
    code = main(["build", "-parallel-builds=1", *flags, str(path)])
    return code, capsys.readouterr().out


def untimed(text: str) -> str:
    text = re.sub(TIME, "T", text)
    text = re.sub(r"/tmp/kiln-[^ \n\x1b]*", "SCRIPT", text)
    return re.sub(r"^\d{10},", "TS,", text, flags=re.M)


def test_the_console_of_a_run_with_a_failed_build(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PACKER_NO_COLOR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out = build(capsys, template(tmp_path))
    assert code == 1
    lines = untimed(out).splitlines()
    g, c = "\x1b[1;32m", "\x1b[1;36m"
    end = "\x1b[0m"
    assert lines[:14] == [
        f"{g}b0: output will be in this color.{end}",
        f"{c}b1: output will be in this color.{end}",
        "",
        f"{g}==> b0: Running local shell script: SCRIPT{end}",
        f"\x1b[0;32m    b0: x,y{end}",
        f"\x1b[0;32m    b0: b{end}",
        f"\x1b[0;32m    b0:{end}",
        f"\x1b[1;31m==> b0: err{end}",
        f"{g}Build 'b0' finished after T.{end}",
        f"{c}==> b1: Running local shell script: SCRIPT{end}",
        f"\x1b[0;36m    b1: x,y{end}",
        f"\x1b[0;36m    b1: b{end}",
        f"\x1b[0;36m    b1:{end}",
        f"\x1b[1;31m==> b1: err{end}",
    ]
    assert lines[14:] [:8] == [
        f"{c}==> b1: Provisioning step had errors: Running the cleanup provisioner, if present...{end}",
        "\x1b[1;31mBuild 'b1' errored after T: Script exited with non-zero exit status: 1. "
        f"Allowed exit codes are: [0]{end}",
        "",
        "==> Wait completed after T",
        "",
        "==> Some builds didn't complete successfully and had errors:",
        "--> b1: Script exited with non-zero exit status: 1. Allowed exit codes are: [0]",
        "",
    ]
    i = lines.index("==> Builds finished. The artifacts of successful builds are:")
    assert lines[i + 1] == "--> b0: Did not export anything. This is the null builder"
    timings = lines[lines.index("==> Stage timings (Kiln):") + 1:]
    assert re.fullmatch(r"--> b0: succeeded in \d+\.\d\ds", timings[0])
    assert re.fullmatch(r"      Connect {29}  +\d+\.\d\ds  succeeded", timings[1])
    assert re.fullmatch(r"      shell-local: echo 'x,y' \(\+3 lines\)  +\d+\.\d\ds  succeeded",
                        timings[2])
    assert timings[3] == f"      log: {tmp_path / '.kiln' / 'logs'}/" + \
        timings[3].split("/logs/")[1] and timings[3].endswith("/b0.log")
    assert re.fullmatch(r"--> b1: failed in \d+\.\d\ds", timings[4])


def test_colour_off_and_no_color(tmp_path, capsys, monkeypatch):
    path = template(tmp_path, builders=1)
    code, out = build(capsys, path, "-color=false")
    assert "\x1b[" not in out and "output will be in this color" not in out
    monkeypatch.setenv("NO_COLOR", "1")
    code, out = build(capsys, path)
    assert "\x1b[" not in out and out.startswith("b0: output will be in this color.\n\n")


def test_six_builds_take_the_five_colours_in_turn(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PACKER_NO_COLOR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out = build(capsys, template(tmp_path, builders=6, script=["true"]))
    assert code == 0
    heads = [ln for ln in out.splitlines() if "output will be in this color" in ln]
    codes = [re.match(r"\x1b\[1;(\d+)m", ln).group(1) for ln in heads]
    assert codes == ["32", "36", "35", "33", "34", "32"]


def test_machine_readable_lines(tmp_path, capsys):
    path = template(tmp_path, post=[{"type": "manifest", "output": str(tmp_path / "m.json")}])
    code, out = build(capsys, path, "-machine-readable")
    assert code == 1
    lines = untimed(out).splitlines()
    o = str(tmp_path / "o.txt")
    assert lines[:5] == [
        "TS,,ui,say,==> b0: Running local shell script: SCRIPT",
        "TS,,ui,message,    b0: x%!(PACKER_COMMA)y",
        "TS,,ui,message,    b0: b",
        "TS,,ui,message,    b0:",
        "TS,,ui,error,==> b0: err",
    ]
    assert "TS,,ui,say,==> b0: Running post-processor: manifest" in lines
    assert "TS,,ui,say,Build 'b0' finished after T." in lines
    assert "TS,,ui,error,Build 'b1' errored after T: Script exited with non-zero exit status: 1. " \
        "Allowed exit codes are: [0]" in lines
    tail = lines[lines.index("TS,,ui,say,\\n==> Wait completed after T"):]
    assert tail == [
        "TS,,ui,say,\\n==> Wait completed after T",
        "TS,,error-count,1",
        "TS,,ui,error,\\n==> Some builds didn't complete successfully and had errors:",
        "TS,b1,error,Script exited with non-zero exit status: 1. Allowed exit codes are: [0]",
        "TS,,ui,error,--> b1: Script exited with non-zero exit status: 1. Allowed exit codes are: [0]",
        "TS,,ui,say,\\n==> Builds finished. The artifacts of successful builds are:",
        "TS,b0,artifact-count,2",
        "TS,b0,artifact,0,builder-id,packer.file",
        "TS,b0,artifact,0,id,File",
        f"TS,b0,artifact,0,string,Stored file: {o}",
        "TS,b0,artifact,0,files-count,1",
        f"TS,b0,artifact,0,file,0,{o}",
        "TS,b0,artifact,0,end",
        f"TS,,ui,say,--> b0: Stored file: {o}",
        "TS,b0,artifact,1,builder-id,packer.file",
        "TS,b0,artifact,1,id,File",
        f"TS,b0,artifact,1,string,Stored file: {o}",
        "TS,b0,artifact,1,files-count,1",
        f"TS,b0,artifact,1,file,0,{o}",
        "TS,b0,artifact,1,end",
        f"TS,,ui,say,--> b0: Stored file: {o}",
    ]


def test_a_post_processors_lines_name_it(tmp_path, capsys):
    path = template(tmp_path, builders=1, post=[
        {"type": "shell-local", "name": "notify", "inline": ["echo sent"]}])
    code, out = build(capsys, path, "-color=false")
    assert "==> b0: Running post-processor: notify (type shell-local)" in out
    assert "    b0 (shell-local): sent" in out


def test_timestamps_and_debug_mode_lines(tmp_path, capsys):
    path = template(tmp_path, builders=1, script=["echo hello"])
    code, out = build(capsys, path, "-color=false", "-timestamp-ui")
    [line] = [ln for ln in out.splitlines() if ln.endswith("    b0: hello")]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d):     b0: hello", line)


def test_a_secret_in_an_artifact_is_masked_in_the_summary(tmp_path, capsys):
    doc = {"variables": {"pw": "s3cr3t-value"}, "sensitive-variables": ["pw"],
           "builders": [{"type": "file", "name": "b0", "content": "x",
                         "target": str(tmp_path / "s3cr3t-value.txt")}]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc).replace("s3cr3t-value.txt", "{{user `pw`}}.txt"))
    code, out = build(capsys, path, "-machine-readable")
    assert code == 0
    assert "s3cr3t-value" not in out.replace(str(tmp_path / "s3cr3t-value.txt"), "")
    assert f"b0,artifact,0,string,Stored file: {tmp_path}/<sensitive>.txt" in out


def test_an_interrupted_run_says_so_and_lists_no_artifacts():
    class Result:
        duration, interrupted = 1.5, True
        results = {"b": type("R", (), {"status": "cancelled", "error": "cancelled",
                                       "artifacts": []})()}

    class NoRuns:
        runners: dict = {}
        log_paths: dict = {}

    out = io.StringIO()
    w = Writer(out)
    ConsoleRenderer(w, color=False).summary(NoRuns(), Result())
    assert w.drain(10)
    assert out.getvalue() == ("\n==> Wait completed after 1 second 500 milliseconds\n"
                              "Cleanly cancelled builds after being interrupted.\n")


def test_a_long_stage_name_is_cut_in_the_timings(tmp_path, capsys):
    long = "echo " + "x" * 80
    code, out = build(capsys, template(tmp_path, builders=1, script=[long]), "-color=false")
    [row] = [ln for ln in out.splitlines() if ln.startswith("      shell-local:")]
    name = ("shell-local: " + long)[:57] + "..."
    assert re.fullmatch(re.escape(f"      {name}") + r"  +\d+\.\d\ds  succeeded", row)


def test_an_errored_build_without_a_message_shows_its_status():
    out = io.StringIO()
    w = Writer(out)
    r = ConsoleRenderer(w, color=False)
    r(Event("build.finished", {"build": "b", "status": "cancelled", "duration": 2.0,
                               "error": ""}))
    r(Event("build.finished", {"build": "c", "status": "succeeded", "duration": 0.0,
                               "error": ""}))
    assert w.drain(10)
    assert out.getvalue() == ("Build 'b' errored after 2 seconds: cancelled\n"
                              "Build 'c' finished after 0 seconds.\n")


# -- the JSON events ---------------------------------------------------------------------------


def test_json_events_to_a_file(tmp_path, capsys):
    events = tmp_path / "events.jsonl"
    code, _ = build(capsys, template(tmp_path, builders=1, script=["echo hi"]),
                    f"-events={events}")
    assert code == 0
    rows = [json.loads(ln) for ln in events.read_text().splitlines()]
    assert rows[0]["type"] == "run.started" and rows[0]["schema"] == SCHEMA
    assert rows[-1]["type"] == "run.finished" and rows[-1]["exit_code"] == 0
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    assert any(r["type"] == "output" and r["lines"] == ["hi"] for r in rows)
    assert all("schema" not in r for r in rows[1:])


def test_json_events_keep_invalid_bytes_and_text():
    out = io.StringIO()
    jw = JsonEventWriter(out)
    jw(Event("output", {"build": "b", "stage": 0, "stream": "stdout",
                        "lines": ["caf\u00e9", "bad \udcff"]}, run="r1"))
    text = out.getvalue()
    assert text.endswith("\n") and "\\udcff" in text
    assert json.loads(text)["lines"] == ["caf\u00e9", "bad \udcff"]
    out = io.StringIO()
    JsonEventWriter(out)(Event("output", {"build": "b", "stage": 0, "stream": "stdout",
                                          "lines": ["caf\u00e9"]}, run="r1"))
    assert "caf\u00e9" in out.getvalue()


def test_json_events_to_a_slow_reader_say_what_was_dropped():
    out = SlowStream()
    w = Writer(out, limit=200)
    jw = JsonEventWriter(writer=w)
    jw(Event("run.started", {"builds": ["b"]}, run="r1"))
    for i in range(50):
        jw(Event("output", {"build": "b", "stage": 0, "stream": "stdout", "lines": [f"l{i}"]},
                 run="r1"))
    jw(Event("run.finished", {"status": "succeeded", "exit_code": 0}, run="r1"))
    out.release()
    assert w.drain(10)
    rows = [json.loads(ln) for ln in out.getvalue().splitlines()]
    dropped = [r for r in rows if r["type"] == "output.dropped"]
    assert dropped and dropped[0]["build"] == "b" and dropped[0]["run"] == "r1"
    shown = sum(len(r["lines"]) for r in rows if r["type"] == "output")
    assert shown + sum(r["lines"] for r in dropped) == 50
    assert rows[-1]["type"] == "run.finished"


def test_closing_the_events_file(tmp_path):
    f = open(tmp_path / "e.jsonl", "w")  # noqa: SIM115 - closed by the writer
    jw = JsonEventWriter(f, close=True)
    jw(Event("run.finished", {"status": "succeeded"}, run="r"))
    jw.close()
    assert f.closed and json.loads((tmp_path / "e.jsonl").read_text())["type"] == "run.finished"
    JsonEventWriter(None).close()  # nothing to close


# -- a slow, closed or full output ---------------------------------------------------------------


class SlowStream(io.StringIO):
    """A reader that takes nothing until released."""

    def __init__(self):
        super().__init__()
        import threading

        self.gate = threading.Event()

    def write(self, text):
        self.gate.wait(10)
        return super().write(text)

    def release(self):
        self.gate.set()


def test_a_slow_terminal_drops_command_output_but_never_kilns_lines():
    out = SlowStream()
    w = Writer(out, limit=100)
    r = ConsoleRenderer(w, color=False)
    r.log_paths["b"] = "/logs/b.log"
    r(Event("run.started", {"builds": ["b"]}))
    for i in range(40):
        r(Event("output", {"build": "b", "stage": 0, "stream": "stdout", "lines": [f"line {i}"]}))
    r(Event("output", {"build": "b", "stage": 0, "stream": "ui", "lines": ["Kiln's own"]}))
    out.release()
    assert w.drain(10)
    lines = out.getvalue().splitlines()
    assert "==> b: Kiln's own" in lines
    shown = [ln for ln in lines if ln.startswith("    b: line")]
    [notice] = [ln for ln in lines if "suppressed" in ln]
    n = 40 - len(shown)
    assert n > 1 and w.dropped_total == n
    assert notice == (f"==> b: {n} lines of output suppressed (the terminal did not keep up); "
                      "the log has everything: /logs/b.log")


def test_the_suppressed_notice_in_each_form():
    w = Writer(io.StringIO())
    r = ConsoleRenderer(w, color=False)
    assert r.suppressed("b", 1) == \
        "==> b: 1 line of output suppressed (the terminal did not keep up)\n"
    m = ConsoleRenderer(Writer(io.StringIO()), machine=True)
    assert re.fullmatch(r"\d+,,ui,error,==> b: 2 lines of output suppressed \(the terminal did "
                        r"not keep up\)\n", m.suppressed("b", 2))


class Broken(io.StringIO):
    def __init__(self, error: OSError):
        super().__init__()
        self.error = error

    def write(self, text):
        raise self.error


def test_a_closed_pipe_ends_the_output_quietly():
    w = Writer(Broken(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    w.write("one\n")
    assert w.drain(10)
    assert w.closed and w.error is None
    w.write("two\n")  # ignored


def test_a_full_disk_is_kept_as_the_writers_error():
    w = Writer(Broken(OSError(errno.ENOSPC, "No space left on device")))
    w.write("one\n")
    assert w.drain(10)
    assert not w.closed and w.error.errno == errno.ENOSPC
    w.write("two\n")
    assert w.drain(1)


def test_bytes_a_command_printed_pass_through_unchanged(tmp_path):
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    w = Writer(stream)
    w.write("caf\u00e9 \udcff\n")
    assert w.drain(10)
    assert raw.getvalue() == "caf\u00e9 ".encode() + b"\xff\n"


def test_drain_gives_up_at_its_timeout():
    out = SlowStream()
    w = Writer(out)
    w.write("x\n")
    assert w.drain(0.2) is False
    out.release()
    assert w.drain(10) is True
    assert out.getvalue() == "x\n"


@pytest.mark.parametrize("machine", [False, True])
def test_plain_lines_of_the_command(machine):
    out = io.StringIO()
    w = Writer(out)
    r = ConsoleRenderer(w, color=False, machine=machine)
    r.say_plain("a,b\nc")
    r.say_plain("bad", error=True)
    r.mline("t", "kind", "x,y")
    assert w.drain(10)
    if machine:
        assert untimed(out.getvalue()).splitlines() == [
            "TS,,ui,say,a%!(PACKER_COMMA)b\\nc", "TS,,ui,error,bad",
            "TS,t,kind,x%!(PACKER_COMMA)y"]
    else:
        assert out.getvalue() == "a,b\nc\nbad\n"


def renderer_output(events, **opts) -> str:
    out = io.StringIO()
    w = Writer(out)
    r = ConsoleRenderer(w, **opts)
    for ev in events:
        r(ev)
    assert w.drain(10)
    return out.getvalue()


def test_debug_mode_says_builds_run_one_at_a_time():
    started = Event("run.started", {"builds": ["a"]})
    assert renderer_output([started], color=False, debug=True) == \
        "Debug mode enabled. Builds will not be parallelized.\n"
    assert renderer_output([started], color=False) == ""
    assert renderer_output([started], machine=True, debug=True) == ""
    assert renderer_output([Event("run.started", {"builds": []})], color=True) == ""


def test_a_replanned_build_names_its_post_processors_where_they_moved():
    stages = [{"index": 0, "name": "Connect", "kind": "builder"},
              {"index": 1, "name": "upload (shell-local)", "kind": "post-processor"}]
    moved = [{"index": 0, "name": "Connect", "kind": "builder"},
             {"index": 1, "name": "p", "kind": "provisioner"},
             {"index": 2, "name": "upload (shell-local)", "kind": "post-processor"}]
    out = renderer_output([
        Event("run.started", {"builds": ["b"]}),
        Event("build.started", {"build": "b", "stages": stages}),
        Event("output", {"build": "b", "stage": 1, "stream": "stdout", "lines": ["one"]}),
        Event("build.replanned", {"build": "b", "stages": moved}),
        Event("output", {"build": "b", "stage": 2, "stream": "stdout", "lines": ["two"]}),
        Event("output", {"build": "b", "stage": None, "stream": "ui", "lines": ["plain"]}),
        Event("output", {"build": "b", "stage": 0, "stream": "stderr", "lines": ["oops\r"]}),
    ], color=False)
    assert out.splitlines() == ["    b (shell-local): one", "    b (shell-local): two",
                                "==> b: plain", "==> b: oops"]


def test_control_characters_in_kilns_lines_are_shown_not_sent():
    out = renderer_output([
        Event("output", {"build": "b", "stage": 0, "stream": "ui", "lines": ["bell\x07 esc\x1b[2J"]}),
        Event("output", {"build": "b", "stage": 0, "stream": "stdout", "lines": ["raw\x1b[1m"]}),
    ], color=False)
    first, second = out.splitlines()
    assert "\x07" not in first and "\x1b" not in first and first.startswith("==> b: bell")
    assert second == "    b: raw\x1b[1m"  # a command's own output passes as it is


def test_output_at_the_limit_is_still_written():
    out = SlowStream()
    w = Writer(out, limit=10)
    w.write("a\n")  # the writer holds this one until the reader takes it
    w.write("b" * 7 + "\n", droppable=True, key="b")  # exactly up to the limit
    w.write("c\n", droppable=True, key="b")  # over it
    out.release()
    assert w.drain()  # no timeout: waits as long as it takes
    assert out.getvalue() == "a\nbbbbbbb\n" and w.dropped_total == 1


def test_dropped_progress_events_leave_no_dropped_lines_notice():
    out = SlowStream()
    w = Writer(out, limit=10)
    jw = JsonEventWriter(writer=w)
    jw(Event("run.started", {"builds": ["b"]}, run="r"))
    for i in range(5):  # progress of another build: dropped, but no lines to tell of
        jw(Event("progress", {"build": "p", "stage": 0, "message": f"{i}%", "current": i,
                              "total": 5}, run="r"))
    for _ in range(3):
        jw(Event("output", {"build": "b", "stage": 0, "stream": "stdout", "lines": ["x", "y"]},
                 run="r"))
    out.release()
    assert w.drain(10)
    rows = [json.loads(ln) for ln in out.getvalue().splitlines()]
    dropped = [r for r in rows if r["type"] == "output.dropped"]
    assert [r["lines"] for r in dropped] == [6]
    assert list(dropped[0]) == ["type", "ts", "seq", "run", "build", "lines"]
    assert round(dropped[0]["ts"], 6) == dropped[0]["ts"]


def test_a_build_the_console_was_not_told_about_gets_the_first_colour():
    out = renderer_output([
        Event("output", {"build": "x", "stage": 0, "stream": "stdout", "lines": ["endsX"]}),
        Event("build.finished", {"build": "x", "status": "succeeded", "duration": 1.0,
                                 "error": ""})], color=True)
    assert out.splitlines() == ["\x1b[0;32m    x: endsX\x1b[0m",
                                "\x1b[1;32mBuild 'x' finished after 1 second.\x1b[0m"]


def test_stderr_is_dropped_like_stdout_when_the_terminal_lags():
    out = SlowStream()
    w = Writer(out, limit=50)
    r = ConsoleRenderer(w, color=False)
    for i in range(20):
        r(Event("output", {"build": "b", "stage": 0, "stream": "stderr", "lines": [f"e{i}"]}))
    out.release()
    assert w.drain(10)
    assert w.dropped_total > 0


def test_timestamps_carry_the_local_offset(monkeypatch):
    import time as time_mod

    monkeypatch.setenv("TZ", "IST-5:30")
    time_mod.tzset()
    try:
        out = renderer_output([Event("output", {"build": "b", "stage": 0, "stream": "ui",
                                                "lines": ["hi"]})], color=False, timestamps=True)
    finally:
        monkeypatch.delenv("TZ")
        time_mod.tzset()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+05:30: ==> b: hi\n", out)
    monkeypatch.setenv("TZ", "UTC")
    time_mod.tzset()
    try:
        out = renderer_output([Event("output", {"build": "b", "stage": 0, "stream": "ui",
                                                "lines": ["hi"]})], color=False, timestamps=True)
    finally:
        monkeypatch.delenv("TZ")
        time_mod.tzset()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: ==> b: hi\n", out)


def test_a_build_name_with_a_newline_cannot_break_the_line():
    out = renderer_output([Event("output", {"build": "x\ny", "stage": 0, "stream": "ui",
                                            "lines": ["hi"]})], color=False)
    assert out == "==> x\\x0ay: hi\n"  # shown escaped, on one line
