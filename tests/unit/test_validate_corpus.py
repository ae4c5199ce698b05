"""`kiln validate` over the template corpus: valid ones pass, invalid ones fail with located errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kiln.backend.engine.prepare import Options, Preparer, select_builds
from kiln.backend.engine.session import load_template
from kiln.backend.template.errors import TemplateError

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "validate"
REAL_WORLD = Path(__file__).resolve().parents[1] / "corpus" / "real-world"  # SOURCES.md there

# file -> problems the user must see: (line, col, key path, text in the message)
EXPECTED = {
    "bad_json_syntax.json": [(5, 3, "", "expected ',' or '}'")],
    "bad_unknown_root_key.json": [(3, 3, "provisioner", 'did you mean "provisioners"')],
    "bad_no_builders.json": [(1, 1, "builders", "at least one builder")],
    "bad_builder_missing_type.json": [(1, 15, "builders[0]", 'missing "type"')],
    "bad_unknown_builder_type.json": [(1, 15, "builders[0].type", 'did you mean "null"')],
    "bad_unknown_config_key.json": [(1, 32, "builders[0].comunicator", 'did you mean "communicator"')],
    "bad_wrong_types.json": [
        (2, 127, "builders[0].ssh_port", 'expected an integer, got "twenty-two"'),
        (3, 54, "provisioners[0].inline", "expected a list, got object"),
    ],
    "bad_required_variable.json": [(2, 27, "variables.region", 'required variable "region" is not set')],
    "bad_duplicate_key.json": [(2, 57, "builders[0].communicator", 'duplicate key "communicator"')],
    "bad_duplicate_builder_name.json": [(4, 5, "builders[1].name", 'a builder named "null" already exists')],
    "bad_only_unknown_builder.json": [(3, 73, "provisioners[0].only[0]", '"nope", which does not exist')],
    "bad_only_and_except.json": [(3, 92, "provisioners[0].except", "only one of 'only' or 'except'")],
    "bad_unknown_function.json": [(3, 55, "provisioners[0].inline[0]", 'function "nosuchfunc" not defined')],
    "bad_bad_duration.json": [(3, 80, "provisioners[0].pause_before", "5 minutes")],
    "bad_shell_local_no_command.json": [(3, 20, "provisioners[0]", "inline")],
    "bad_file_builder_no_target.json": [(1, 15, "builders[0]", 'missing required key "target"')],
    "bad_nested_sequence.json": [(3, 36, "post-processors[0][1]", "nested in a sequence")],
    "bad_pp_missing_type.json": [(3, 23, "post-processors[0]", 'missing "type"')],
    "bad_comment_not_string.json": [(2, 3, "_comment", "must be a string")],
    "bad_missing_script.json": [(3, 54, "provisioners[0].script", "does/not/exist.sh")],
    "bad_yaml_syntax.yaml": [(4, 4, "", "invalid YAML")],
    "bad_override_unknown.json": [(3, 77, "provisioners[0].override.other", '"other", which does not exist')],
    "bad_amazon_instance.json": [
        (2, 16, "builders[0].account_id", "account_id is required"),
        (2, 16, "builders[0].s3_bucket", "s3_bucket is required"),
        (5, 23, "builders[0].x509_cert_path", "x509/nope.pem does not exist"),
        (6, 24, "builders[0].run_volume_tags", "is an amazon-ebs key"),
    ],
    "bad_many_problems.json": [
        (3, 22, "builders[0].comunicator", 'did you mean "communicator"'),
        (4, 35, "builders[1].contents", 'did you mean "content"'),
        (7, 5, "provisioners[0].type", 'did you mean "shell-local"'),
        (8, 29, "provisioners[1].inlin", 'did you mean "inline"'),
        (10, 44, "post-processors[0].ouput", 'did you mean "output"'),
    ],
}


def validate(path: Path, **opts) -> list:
    options = Options(**opts)
    cwd = os.getcwd()
    os.chdir(path.parent)  # relative paths in templates are relative to the working directory
    try:
        t = load_template(str(path), options)
        prep = Preparer(t, options)
        prep.prepare(select_builds(t, options.only, options.except_))
        return prep.problems
    except TemplateError as e:
        return e.problems
    finally:
        os.chdir(cwd)


def test_corpus_is_big_enough():
    files = [p for p in CORPUS.iterdir() if p.suffix in (".json", ".yaml")]
    assert len(files) >= 25
    assert len([p for p in files if p.name.startswith("bad_")]) >= 15


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.iterdir() if p.name.startswith(("ok_", "kiln_only_"))))
def test_valid_templates_pass(name):
    assert validate(CORPUS / name) == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_templates_report_every_problem_with_its_location(name):
    problems = validate(CORPUS / name)
    assert problems, f"{name} was accepted"
    formatted = [p.format() for p in problems]
    for line, col, path, text in EXPECTED[name]:
        hits = [p for p in problems if p.loc.line == line and p.loc.col == col and p.loc.path == path
                and text in p.message]
        assert hits, f"expected {line}:{col} {path}: ...{text}... in:\n" + "\n".join(formatted)
    for p in problems:
        assert p.loc.file.endswith(name)
        assert p.format().startswith(f"{p.loc.file}:{p.loc.line}:{p.loc.col}: ")


def test_cli_validate_output_and_exit_codes(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "validate", str(CORPUS / "ok_multi_builder.json")],
                        capture_output=True, text=True, cwd=CORPUS)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "The configuration is valid."
    bad = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "validate", "bad_many_problems.json"],
                         capture_output=True, text=True, cwd=CORPUS)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr + bad.stdout
    assert "bad_many_problems.json:8:29: provisioners[1].inlin: unknown configuration key" in bad.stderr
    syntax = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "validate", "-syntax-only", "ok_variables.json"],
                            capture_output=True, text=True, cwd=CORPUS)
    assert syntax.returncode == 0
    assert "Syntax-only check passed" in syntax.stdout


def test_variables_resolve_recursively_and_from_every_source(tmp_path, monkeypatch):
    tpl = tmp_path / "t.json"
    tpl.write_text(json.dumps({
        "variables": {"a": "x", "b": "{{user `a`}}-y", "c": "{{ .Foo }}", "e": "{{env `KILN_TEST_ENV`}}",
                      "f": "from-default", "g": "from-default"},
        "builders": [{"type": "null", "communicator": "none"}],
    }))
    vf = tmp_path / "vars.json"
    vf.write_text(json.dumps({"f": "from-file", "g": "from-file"}))
    monkeypatch.setenv("KILN_TEST_ENV", "env-value")
    monkeypatch.setenv("PKR_VAR_a", "from-env")
    monkeypatch.setenv("PKR_VAR_f", "env-loses-to-file")
    monkeypatch.setenv("PKR_VAR_undeclared", "ignored")
    t = load_template(str(tpl), Options(vars={"g": "from-cli"}, var_files=(str(vf),)))
    assert t.user_vars["a"] == "from-env"
    assert t.user_vars["b"] == "from-env-y"
    assert "undeclared" not in t.user_vars
    assert t.user_vars["c"] == "{{ .Foo }}"
    assert t.user_vars["e"] == "env-value"
    assert t.user_vars["f"] == "from-file"
    assert t.user_vars["g"] == "from-cli"


def test_sensitive_values_never_printed_by_inspect_or_errors(tmp_path):
    tpl = tmp_path / "t.json"
    tpl.write_text(json.dumps({
        "variables": {"password": "hunter2-very-secret"},
        "sensitive-variables": ["password"],
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["echo {{user `password`}} {{ nosuch }}"]}],
    }))
    out = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "inspect", str(tpl)], capture_output=True, text=True)
    assert out.returncode == 0
    assert "<sensitive>" in out.stdout and "hunter2-very-secret" not in out.stdout
    bad = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "validate", str(tpl)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "hunter2-very-secret" not in bad.stdout + bad.stderr


def test_only_and_except_select_builds():
    path = CORPUS / "ok_multi_builder.json"
    t = load_template(str(path), Options())
    assert [b.name for b in select_builds(t, ("second",), ())] == ["second"]
    assert [b.name for b in select_builds(t, (), ("second",))] == ["null", "notes"]
    # a provisioner's only/except decides which builds run it
    second = t.build("second")
    assert len(second.provisioners) == 3
    assert len(t.build("notes").provisioners) == 1


def test_post_processor_forms_become_chains():
    t = load_template(str(CORPUS / "ok_post_processor_forms.json"), Options())
    chains = t.builds[0].post_processors
    assert [[p.type for p in c] for c in chains] == [
        ["manifest"], ["checksum"], ["compress", "manifest"], ["artifice", "shell-local"]]
    assert chains[2][0].keep_input_artifact is True


def test_yaml_and_json_give_the_same_model(tmp_path):
    y = load_template(str(CORPUS / "ok_yaml.yaml"), Options())
    assert y.format == "yaml"
    assert [b.name for b in y.builds] == ["null", "yaml-file"]
    assert y.builds[1].config.get("content").loc.line == 10


def test_inspect_lists_components():
    out = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "inspect", str(CORPUS / "ok_multi_builder.json")],
                         capture_output=True, text=True)
    assert out.returncode == 0
    assert "multi-builder template" in out.stdout
    assert "  second" in out.stdout and "  notes  (file)" in out.stdout
    assert out.stdout.count("shell-local") == 3


@pytest.mark.parametrize("name", sorted(p.name for p in REAL_WORLD.glob("*.json")))
def test_real_world_templates_load_without_tracebacks(name):
    """Every real-world template loads, or fails with located errors; never a traceback."""
    proc = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "validate", str(REAL_WORLD / name)],
                          capture_output=True, text=True, cwd=REAL_WORLD, timeout=60)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    assert proc.returncode in (0, 1)
    if proc.returncode:
        assert f"{name}:" in out  # errors point into the file
    syntax = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "inspect", str(REAL_WORLD / name)],
                            capture_output=True, text=True, cwd=REAL_WORLD, timeout=60)
    assert "Traceback" not in syntax.stdout + syntax.stderr


def test_durations_written_with_user_variables_are_rendered(tmp_path):
    """``"pause_before": "{{user `pause`}}"`` (as in Spinnaker's template) works; Packer 1.6.6
    rejects it at parse time."""
    tpl = tmp_path / "t.json"
    tpl.write_text(json.dumps({
        "variables": {"pause": "300ms", "limit": "1m"},
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["echo after-the-pause"],
                          "pause_before": "{{user `pause`}}", "timeout": "{{ user `limit` }}"}],
    }, indent=2))
    r = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "build", "-color=false", str(tpl)],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Pausing 300ms before the next provisioner..." in r.stdout
    assert "after-the-pause" in r.stdout

    with pytest.raises(TemplateError) as e:
        load_template(str(tpl), Options(vars={"pause": "soon"}))
    (p,) = e.value.problems
    line = next(n for n, text in enumerate(tpl.read_text().splitlines(), 1) if "pause_before" in text)
    assert (p.loc.line, p.loc.path) == (line, "provisioners[0].pause_before")
    assert 'invalid duration "soon" (rendered from "{{user `pause`}}")' in p.message
