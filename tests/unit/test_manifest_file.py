"""The manifest file across builds and runs, as the tools reading it see it: earlier entries
kept exactly (sizes, build times, custom data), the lock file shared with other processes,
what is refused in an existing file, and the bytes Packer's encoder writes."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest
from kiln.backend.cli import main
from kiln.backend.plugins.postprocessors.manifest import (
    build_entry,
    go_json,
    go_json_string,
    parse_manifest,
    update_manifest,
)
from kiln.backend.sdk.plugin import Artifact, StepError


def kiln_build(tmp_path: Path, doc: dict, *flags: str) -> int:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    return main(["build", "-color=false", *flags, str(path)])


def test_a_second_run_appends_and_keeps_the_first_entry_whole(tmp_path, capsys):
    out = tmp_path / "out.txt"
    manifest = tmp_path / "m.json"
    doc = {"builders": [{"type": "file", "target": str(out), "content": "hello"}],
           "post-processors": [{"type": "manifest", "output": str(manifest),
                                "custom_data": {"who": "{{build_name}}"}}]}
    assert kiln_build(tmp_path, doc) == 0
    first = json.loads(manifest.read_text())
    [entry] = first["builds"]
    assert entry["files"] == [{"name": str(out), "size": 5}]
    assert entry["build_time"] > 1_600_000_000 and entry["custom_data"] == {"who": "file"}
    doc["builders"][0]["content"] = "hello, world"
    assert kiln_build(tmp_path, doc) == 0
    second = json.loads(manifest.read_text())
    assert second["builds"][0] == entry
    assert second["builds"][1]["files"] == [{"name": str(out), "size": 12}]
    assert second["last_run_uuid"] == second["builds"][1]["packer_run_uuid"] != \
        entry["packer_run_uuid"]
    # -force starts the file afresh for the new run
    assert kiln_build(tmp_path, doc, "-force") == 0
    third = json.loads(manifest.read_text())
    assert len(third["builds"]) == 1 and third["builds"][0]["packer_run_uuid"] != \
        second["last_run_uuid"]
    capsys.readouterr()


def test_existing_entries_are_rewritten_with_their_values(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"builds": [
        {"name": "a", "builder_type": "docker", "build_time": 1700000000.0,
         "files": [{"name": "x.tar", "size": 2048.0}, None, {"SIZE": 3, "name": None}],
         "artifact_id": "sha256:1", "packer_run_uuid": "r0", "custom_data": {"k": None}},
        None], "last_run_uuid": None}))
    update_manifest(str(path), {"name": "b"}, "r1", force=False)
    text = path.read_text()
    doc = json.loads(text)
    assert doc["builds"][0] == {
        "name": "a", "builder_type": "docker", "build_time": 1700000000,
        "files": [{"name": "x.tar", "size": 2048}, {"name": "", "size": 0},
                  {"name": "", "size": 3}],
        "artifact_id": "sha256:1", "packer_run_uuid": "r0", "custom_data": {"k": ""}}
    assert doc["builds"][1] == {"name": "", "builder_type": "", "files": None,
                                "artifact_id": "", "packer_run_uuid": "", "custom_data": None}
    assert doc["builds"][2] == {"name": "b"} and doc["last_run_uuid"] == "r1"
    assert '"build_time": 1700000000,' in text and '"size": 2048\n' in text


@pytest.mark.parametrize("content, why", [
    ("[]", "the top level is not an object"),
    ('{"last_run_uuid": 5}', "last_run_uuid is not a string"),
    ('{"builds": {}}', "builds is not a list"),
    ('{"builds": [5]}', "an entry of builds is not an object"),
    ('{"builds": [{"build_time": "now"}]}', "build_time is not an integer"),
    ('{"builds": [{"build_time": true}]}', "build_time is not an integer"),
    ('{"builds": [{"build_time": 1.5}]}', "build_time is not an integer"),
    ('{"builds": [{"files": {}}]}', "files is not a list"),
    ('{"builds": [{"files": [1]}]}', "an item of files is not an object"),
    ('{"builds": [{"files": [{"name": 1}]}]}', "a file name is not a string"),
    ('{"builds": [{"files": [{"size": "1"}]}]}', "a file size is not an integer"),
    ('{"builds": [{"files": [{"size": false}]}]}', "a file size is not an integer"),
    ('{"builds": [{"files": [{"size": 0.5}]}]}', "a file size is not an integer"),
    ('{"builds": [{"custom_data": []}]}', "custom_data is not an object of strings"),
    ('{"builds": [{"custom_data": {"a": 1}}]}', "custom_data is not an object of strings"),
    ('{"builds": [{"name": 1}]}', "name is not a string"),
    ('{"builds": [{"Artifact_ID": []}]}', "artifact_id is not a string"),
])
def test_a_manifest_kiln_cannot_read_is_left_as_it_is(tmp_path, content, why):
    path = tmp_path / "m.json"
    path.write_text(content)
    with pytest.raises(StepError) as err:
        update_manifest(str(path), {"name": "b"}, "r1", force=False)
    assert str(err.value) == f"cannot parse the manifest {path}: {why}"
    assert path.read_text() == content
    assert not Path(str(path) + ".lock").exists()


def test_an_empty_or_null_manifest_starts_afresh(tmp_path):
    path = tmp_path / "m.json"
    for content in ("", "null", '{"builds": null}'):
        path.write_text(content)
        update_manifest(str(path), {"name": "b"}, "r1", force=False)
        assert json.loads(path.read_text()) == {"builds": [{"name": "b"}], "last_run_uuid": "r1"}
    assert parse_manifest(b'{"BUILDS": [], "Last_Run_UUID": "x"}', "p") == \
        {"builds": [], "last_run_uuid": "x"}


def test_an_unreadable_or_unwritable_manifest_is_a_clear_error(tmp_path):
    folder = tmp_path / "m.json"
    folder.mkdir()
    with pytest.raises(StepError, match=rf"^cannot read the manifest {folder}: Is a directory$"):
        update_manifest(str(folder), {"name": "b"}, "r1", force=False)
    missing = tmp_path / "no" / "m.json"
    with pytest.raises(StepError, match=rf"^cannot write the manifest {missing}: "):
        update_manifest(str(missing), {"name": "b"}, "r1", force=False)


def test_a_lock_held_by_another_run_is_waited_for_briefly_then_ignored(tmp_path):
    path = tmp_path / "m.json"
    lock = Path(str(path) + ".lock")
    lock.write_text("")
    t0 = time.monotonic()
    update_manifest(str(path), {"name": "b"}, "r1", force=False)
    waited = time.monotonic() - t0
    # three tries, 0.2 s apart and growing (0 + 0.2 + 0.4 s), as Packer's
    assert 0.55 <= waited < 10
    assert lock.exists() and len(json.loads(path.read_text())["builds"]) == 1


def test_the_tries_for_the_lock_wait_longer_each_time(tmp_path, monkeypatch):
    from kiln.backend.plugins.postprocessors import manifest as manifest_mod

    path = tmp_path / "m.json"
    lock = Path(str(path) + ".lock")
    lock.write_text("")
    waits: list[float] = []
    monkeypatch.setattr(manifest_mod.time, "sleep", waits.append)
    update_manifest(str(path), {"name": "a"}, "r1", force=False)
    assert waits == [0, 0.2, 0.4] and lock.exists()

    def released_while_waiting(seconds):
        waits.append(seconds)
        if seconds and lock.exists():
            lock.unlink()

    waits.clear()
    monkeypatch.setattr(manifest_mod.time, "sleep", released_while_waiting)
    update_manifest(str(path), {"name": "b"}, "r1", force=False)
    # the second try found it free, took it, and removed it when done
    assert waits == [0, 0.2] and not lock.exists()
    assert [b["name"] for b in json.loads(path.read_text())["builds"]] == ["a", "b"]


def _append_many(path: str, who: str, count: int) -> None:
    for i in range(count):
        update_manifest(path, {"name": f"{who}{i}"}, who, force=False)


def test_two_processes_appending_at_once_lose_no_entry(tmp_path):
    """The lock file is what keeps two Kiln runs (two processes) from overwriting each
    other's entries."""
    path = str(tmp_path / "m.json")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, who, 25)) for who in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    names = sorted(b["name"] for b in json.loads(Path(path).read_text())["builds"])
    assert names == sorted(f"{w}{i}" for w in "ab" for i in range(25))
    assert not os.path.exists(path + ".lock")


def test_an_entry_for_each_kind_of_artifact(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"123")
    art = Artifact("packer.file", id="File", files=[str(f), str(tmp_path / "gone")])
    assert build_entry(art, "b", "file", "r", now=1700000000.7) == {
        "name": "b", "builder_type": "file", "build_time": 1700000000,
        "files": [{"name": str(f), "size": 3}, {"name": str(tmp_path / "gone"), "size": 0}],
        "artifact_id": "File", "packer_run_uuid": "r", "custom_data": None}
    entry = build_entry(art, "b", "file", "r", strip_path=True, strip_time=True,
                        custom={"z": "1", "a": "2"})
    assert list(entry) == ["name", "builder_type", "files", "artifact_id", "packer_run_uuid",
                           "custom_data"]
    assert entry["files"][0] == {"name": "a.bin", "size": 3}
    assert list(entry["custom_data"].items()) == [("a", "2"), ("z", "1")]
    assert build_entry(Artifact("x", id="i"), "b", "t", "r", now=5)["files"] is None


def test_values_are_encoded_as_go_encodes_them():
    assert go_json([1.0, 2.5, False, None, "é"]) == '[\n  1,\n  2.5,\n  false,\n  null,\n  "é"\n]'
    assert go_json({"a": {"b": []}}, indent="\t") == '{\n\t"a": {\n\t\t"b": []\n\t}\n}'
    assert go_json_string("<a & b>\r\u2029\x1f\udc80") == \
        '"\\u003ca \\u0026 b\\u003e\\r\\u2029\\u001f\ufffd"'
    with pytest.raises(TypeError, match="cannot encode set as JSON"):
        go_json({1})
