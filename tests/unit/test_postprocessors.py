"""manifest, compress, artifice and checksum post-processors, on real files."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import struct
import sys
import tarfile
import threading
import zipfile

import build_context
import pytest
from build_context import decode, plugin
from kiln.backend.plugins.postprocessors.artifice import ArtificePostProcessor, go_glob
from kiln.backend.plugins.postprocessors.checksum import ChecksumPostProcessor
from kiln.backend.plugins.postprocessors.compress import (
    BGZF_EOF,
    CompressPostProcessor,
    detect_format,
)
from kiln.backend.plugins.postprocessors.manifest import ManifestPostProcessor, go_json
from kiln.backend.sdk.plugin import Artifact, StepError
from kiln.backend.template.decode import ConfigProblems

# --------------------------------------------------------------------------- factory


class Run(build_context.Run):
    def __init__(self, build_name="null", build_type="null", run_id="run-1", force=False):
        super().__init__(build_name, build_type, run_id, force=force,
                         user_vars={"uv": "user-value"})

    def say(self) -> list[str]:
        return self.lines("ui")

    def pp(self, cls, config: dict, artifact: Artifact) -> Artifact:
        return plugin(cls, config).post_process(self.ctx, self.ctx.ui, artifact)


@pytest.fixture
def run(tmp_path, monkeypatch) -> Run:
    monkeypatch.chdir(tmp_path)
    return Run()


NULL_ART = Artifact("fnoeding.null", id="Null", string="Did not export anything.",
                    state={"generated_data": {"ID": "Null"}})


def files_art(*paths: str, **state) -> Artifact:
    return Artifact("packer.file", id="File", files=list(paths), state=state or None)


def write(path: str, data: bytes | str, mode: int = 0o644) -> str:
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    return path


# =========================================================================== manifest


def manifest(path="packer-manifest.json") -> dict:
    with open(path) as f:
        return json.load(f)


def test_manifest_entry_fields_in_packer_order(run):
    write("a/one.bin", b"12345")
    out = run.pp(ManifestPostProcessor, {}, files_art("a/one.bin", "a/missing.bin"))
    assert out.files() == ["a/one.bin", "a/missing.bin"]
    text = open("packer-manifest.json").read()
    assert not text.endswith("\n")
    doc = json.loads(text)
    assert list(doc) == ["builds", "last_run_uuid"]
    (entry,) = doc["builds"]
    assert list(entry) == ["name", "builder_type", "build_time", "files", "artifact_id",
                           "packer_run_uuid", "custom_data"]
    assert entry["name"] == "null" and entry["builder_type"] == "null"
    assert isinstance(entry["build_time"], int) and entry["build_time"] > 1_600_000_000
    assert entry["files"] == [{"name": "a/one.bin", "size": 5},
                              {"name": "a/missing.bin", "size": 0}]
    assert entry["artifact_id"] == "File"
    assert entry["packer_run_uuid"] == "run-1" and doc["last_run_uuid"] == "run-1"
    assert entry["custom_data"] is None
    assert text.startswith('{\n  "builds": [\n    {\n      "name": "null",\n')


def test_manifest_returns_its_input_and_keeps_it():
    assert ManifestPostProcessor.default_keep == (True, True)


def test_manifest_no_files_is_null_and_strip_options(run):
    run.pp(ManifestPostProcessor, {"strip_time": True}, NULL_ART)
    write("d/e/f.txt", "x")
    run.pp(ManifestPostProcessor, {"strip_path": True, "strip_time": True}, files_art("d/e/f.txt"))
    a, b = manifest()["builds"]
    assert "build_time" not in a and a["files"] is None
    assert b["files"] == [{"name": "f.txt", "size": 1}]


def test_manifest_custom_data_rendered_sorted_and_go_escaped(run):
    run.pp(ManifestPostProcessor, {
        "output": "m.json",
        "custom_data": {"z": "{{build `ID`}}", "a": "<&>", "m": "{{.ID}}-{{build_name}}",
                        "u": "{{user `uv`}}"},
    }, NULL_ART)
    text = open("m.json").read()
    assert '"a": "\\u003c\\u0026\\u003e"' in text
    entry = json.loads(text)["builds"][0]
    assert list(entry["custom_data"]) == ["a", "m", "u", "z"]
    assert entry["custom_data"] == {"a": "<&>", "m": "Null-null", "u": "user-value",
                                    "z": "Null"}


def test_manifest_custom_data_without_generated_data(run):
    run.pp(ManifestPostProcessor, {"custom_data": {"id": "{{.ID}}"}}, files_art())
    assert manifest()["builds"][0]["custom_data"] == {"id": "<no value>"}


def test_manifest_appends_across_runs_and_resets_with_force(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Run(run_id="r1").pp(ManifestPostProcessor, {}, NULL_ART)
    Run(run_id="r1").pp(ManifestPostProcessor, {}, NULL_ART)
    Run(run_id="r2").pp(ManifestPostProcessor, {}, NULL_ART)  # no -force: append
    doc = manifest()
    assert [b["packer_run_uuid"] for b in doc["builds"]] == ["r1", "r1", "r2"]
    assert doc["last_run_uuid"] == "r2"
    # -force with the same run id (a second build of this run) appends
    Run(run_id="r2", force=True).pp(ManifestPostProcessor, {}, NULL_ART)
    assert len(manifest()["builds"]) == 4
    # -force from a new run starts the file afresh
    Run(run_id="r3", force=True).pp(ManifestPostProcessor, {}, NULL_ART)
    doc = manifest()
    assert [b["packer_run_uuid"] for b in doc["builds"]] == ["r3"]


def test_manifest_mode_and_lock_removed(run):
    old = os.umask(0)
    try:
        run.pp(ManifestPostProcessor, {}, NULL_ART)
    finally:
        os.umask(old)
    assert os.stat("packer-manifest.json").st_mode & 0o777 == 0o664
    assert not os.path.exists("packer-manifest.json.lock")


def test_manifest_waits_for_a_held_lock_then_goes_on(run):
    write("packer-manifest.json.lock", "")
    run.pp(ManifestPostProcessor, {}, NULL_ART)
    assert len(manifest()["builds"]) == 1
    assert os.path.exists("packer-manifest.json.lock")  # someone else's lock is left alone


def test_manifest_existing_entries_are_normalised(run):
    write("packer-manifest.json", json.dumps({
        "Builds": [{"NAME": "old", "extra": 1, "build_time": 0, "files": [{"Name": "f"}],
                    "custom_data": {"b": "2", "a": "1"}}],
        "last_run_uuid": "old-run", "other": True,
    }))
    run.pp(ManifestPostProcessor, {"strip_time": True}, NULL_ART)
    doc = manifest()
    assert doc["builds"][0] == {"name": "old", "builder_type": "", "files": [{"name": "f",
                                "size": 0}], "artifact_id": "", "packer_run_uuid": "",
                                "custom_data": {"a": "1", "b": "2"}}
    assert list(doc) == ["builds", "last_run_uuid"]


def test_manifest_unparsable_file_fails(run):
    write("packer-manifest.json", "{not json")
    with pytest.raises(StepError, match="cannot parse"):
        run.pp(ManifestPostProcessor, {}, NULL_ART)
    assert not os.path.exists("packer-manifest.json.lock")


def test_manifest_parallel_builds_lose_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    errors = []

    def one(i):
        try:
            Run(build_name=f"b{i}").pp(ManifestPostProcessor, {}, NULL_ART)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(b["name"] for b in manifest()["builds"]) == [f"b{i}" for i in range(8)]


def test_go_json_matches_go_encoding():
    assert go_json({"a": [], "b": {}, "c": None, "d": [1, {"e": "x"}], "f": True}) == (
        '{\n  "a": [],\n  "b": {},\n  "c": null,\n  "d": [\n    1,\n    {\n      "e": "x"\n'
        '    }\n  ],\n  "f": true\n}')
    assert go_json("\u2028\x01\"\\\n\té") == '"\\u2028\\u0001\\"\\\\\\n\\té"'


# =========================================================================== compress


@pytest.mark.parametrize("output, fmt, expected", [
    ("x.tar.gz", "", ("tar", "gzip")),
    ("x.tgz", "", ("tar", "gzip")),
    ("x", "", ("tar", "gzip")),
    ("packer_{{.BuildName}}_{{.BuilderType}}", "", ("tar", "gzip")),
    ("x.gz", "", ("", "gzip")),
    ("x.zip", "", ("zip", "")),
    ("x.tar", "", ("tar", "")),
    ("x.tar.zip", "", ("zip", "")),
    ("x.lz4", "", ("", "lz4")),
    ("x.tar.lz4", "", ("tar", "lz4")),
    ("x.bgzf", "", ("", "bgzf")),
    ("x.tar.xz", "", ("tar", "xz")),
    ("x.xz", "", ("", "xz")),
    ("x.tar.bzip2", "", ("tar", "bzip2")),
    ("x.tar.zst", "", ("tar", "gzip")),
    ("x.TAR.GZ", "", ("tar", "gzip")),  # only lower-case extensions count
    ("out.d/x", "", ("tar", "gzip")),
    ("x", "zip", ("zip", "")),
    ("x.tar", "gz", ("tar", "gzip")),
    ("x.gz", "tar", ("tar", "")),
])
def test_format_detection(output, fmt, expected):
    assert detect_format(output, fmt) == expected


def test_compression_level_rules():
    level = lambda n: decode(CompressPostProcessor, {"compression_level": n}).level()  # noqa: E731
    assert [level(0), level(-1), level(1), level(9), level(12), level(-2), level(-5)] == \
        [-1, -1, 1, 9, 9, -2, -5]


@pytest.fixture
def two_files(tmp_path):
    write("in/a.txt", "alpha\n" * 100, 0o640)
    write("in/sub/b.bin", bytes(range(256)) * 10, 0o755)
    return ["in/a.txt", "in/sub/b.bin"]


def tar_members(path: str) -> dict[str, tuple[bytes, int, int]]:
    with tarfile.open(path) as t:
        return {m.name: (t.extractfile(m).read(), m.mode, m.mtime) for m in t}


def test_tar_gz_entries_by_basename_with_mode_and_zero_mtime(run, two_files):
    out = run.pp(CompressPostProcessor, {"output": "out/{{.BuildName}}-{{.BuilderType}}.tar.gz"},
                 files_art(*two_files))
    assert out.files() == ["out/null-null.tar.gz"]
    assert out.builder_id == "packer.post-processor.compress"
    assert out.id() == "" and out.string() == "compressed artifacts in: out/null-null.tar.gz"
    assert out.state("generated_data") is None
    assert tar_members("out/null-null.tar.gz") == {
        "a.txt": (b"alpha\n" * 100, 0o640, 0),
        "b.bin": (bytes(range(256)) * 10, 0o755, 0),
    }
    with tarfile.open("out/null-null.tar.gz") as t:
        assert all(m.uname == "root" or m.uid != 0 for m in t)
    assert CompressPostProcessor.default_keep == (False, False)
    say = run.say()
    assert say[-1] == "Archive out/null-null.tar.gz is complete"


def test_plain_tar_has_no_record_padding(run, two_files):
    run.pp(CompressPostProcessor, {"output": "x.tar"}, files_art(*two_files))
    assert tar_members("x.tar")["a.txt"][0] == b"alpha\n" * 100
    # two headers + data rounded to blocks + the two-block end marker, as Go writes it
    assert os.path.getsize("x.tar") == 512 * 2 + 1024 + 2560 + 1024
    with open("x.tar", "rb") as f:
        assert f.read(512)[257:265] == b"ustar  \0"  # GNU format


def test_empty_artifact_makes_an_empty_tar_gz(run):
    run.pp(CompressPostProcessor, {}, NULL_ART)  # default output, no extension: tar.gz
    with gzip.open("packer_null_null") as f:
        assert f.read() == b"\0" * 1024


def test_zip_entries_keep_the_given_path(run, two_files):
    out = run.pp(CompressPostProcessor, {"output": "x.zip"}, files_art(*two_files))
    with zipfile.ZipFile(out.files()[0]) as z:
        assert z.namelist() == two_files
        assert z.read("in/a.txt") == b"alpha\n" * 100
        assert z.read("in/sub/b.bin") == bytes(range(256)) * 10
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())


def test_single_file_gzip(run, two_files):
    run.pp(CompressPostProcessor, {"output": "a.gz", "compression_level": 9},
           files_art(two_files[0]))
    with gzip.open("a.gz") as f:
        assert f.read() == b"alpha\n" * 100


def test_single_file_needs_exactly_one_input(run, two_files):
    with pytest.raises(StepError, match="exactly one input file.*has 2"):
        run.pp(CompressPostProcessor, {"output": "a.gz"}, files_art(*two_files))
    assert not os.path.exists("a.gz")
    with pytest.raises(StepError, match="has 0"):
        run.pp(CompressPostProcessor, {"output": "a.xz"}, NULL_ART)


def test_missing_input_file_fails_and_leaves_no_archive(run):
    with pytest.raises(StepError, match="missing.txt"):
        run.pp(CompressPostProcessor, {"output": "x.tar.gz"}, files_art("missing.txt"))
    assert not os.path.exists("x.tar.gz")


@pytest.mark.parametrize("output, opener", [
    ("s.xz", lzma.open), ("s.bzip2", bz2.open), ("s.gz", gzip.open), ("s.bgzf", gzip.open),
])
def test_stream_formats_round_trip(run, output, opener):
    data = os.urandom(200_000) + b"z" * 300_000
    write("big.bin", data)
    run.pp(CompressPostProcessor, {"output": output}, files_art("big.bin"))
    with opener(output) as f:
        assert f.read() == data


def test_tar_xz_round_trip(run, two_files):
    run.pp(CompressPostProcessor, {"output": "x.tar.xz"}, files_art(*two_files))
    with tarfile.open("x.tar.xz", "r:xz") as t:
        assert sorted(t.getnames()) == ["a.txt", "b.bin"]


def test_bgzf_blocks(run):
    data = b"".join(i.to_bytes(4, "big") for i in range(60_000))  # 240 kB, several blocks
    write("in.bin", data)
    run.pp(CompressPostProcessor, {"output": "x.bgzf"}, files_art("in.bin"))
    raw = open("x.bgzf", "rb").read()
    assert raw.endswith(BGZF_EOF)
    pos, blocks = 0, 0
    while pos < len(raw):
        assert raw[pos:pos + 4] == b"\x1f\x8b\x08\x04"
        assert raw[pos + 12:pos + 14] == b"BC"
        (bsize,) = struct.unpack("<H", raw[pos + 16:pos + 18])
        pos += bsize + 1
        blocks += 1
    assert pos == len(raw) and blocks >= 5
    assert gzip.decompress(raw) == data


def test_lz4_round_trip(run):
    import lz4.frame as frame  # a runtime dependency: a normal install writes .lz4
    write("in.txt", "lz4 data\n" * 1000)
    run.pp(CompressPostProcessor, {"output": "x.tar.lz4"}, files_art("in.txt"))
    with tarfile.open(fileobj=io.BytesIO(frame.decompress(open("x.tar.lz4", "rb").read()))) as t:
        assert t.extractfile("in.txt").read() == b"lz4 data\n" * 1000


def test_lz4_missing_package_is_explained(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "lz4", None)
    monkeypatch.setitem(sys.modules, "lz4.frame", None)
    write("in.txt", "x")
    with pytest.raises(StepError, match="pip install lz4"):
        run.pp(CompressPostProcessor, {"output": "x.lz4"}, files_art("in.txt"))
    assert not os.path.exists("x.lz4")


def test_invalid_compression_level(run):
    write("in.txt", "x" * 1000)
    with pytest.raises(StepError, match="-1 to 9"):
        run.pp(CompressPostProcessor, {"output": "x.gz", "compression_level": -3},
               files_art("in.txt"))
    run.pp(CompressPostProcessor, {"output": "h.gz", "compression_level": -2},
           files_art("in.txt"))  # Huffman-only is a valid gzip level
    assert gzip.open("h.gz").read() == b"x" * 1000
    run.pp(CompressPostProcessor, {"output": "n.tar.xz", "compression_level": -3},
           files_art("in.txt"))  # xz ignores the level


def test_format_option_and_generated_data_in_output(run):
    write("in.txt", "data")
    art = files_art("in.txt", generated_data={"ID": "i-1"})
    out = run.pp(CompressPostProcessor, {"output": "o/{{.ID}}/{{build_name}}", "format": "zip"},
                 art)
    assert out.files() == ["o/i-1/null"]
    with zipfile.ZipFile("o/i-1/null") as z:
        assert z.namelist() == ["in.txt"]


def test_compress_artifact_destroy_removes_archive(run):
    write("in.txt", "x")
    out = run.pp(CompressPostProcessor, {"output": "x.gz"}, files_art("in.txt"))
    out.destroy()
    assert not os.path.exists("x.gz") and os.path.exists("in.txt")


def test_compress_output_template_error_at_run_time(run):
    write("in.txt", "x")
    with pytest.raises(StepError, match="output"):
        run.pp(CompressPostProcessor, {"output": "{{ nosuchfunc }}.tar"}, files_art("in.txt"))


# =========================================================================== artifice


def test_artifice_globs_like_go(run):
    for p in ("d/a.txt", "d/b.txt", "d/.hidden.txt", "d/c.log", "d/sub/x.txt", "e/z.bin"):
        write(p, p)
    assert go_glob("d/*.txt") == ["d/.hidden.txt", "d/a.txt", "d/b.txt"]
    assert go_glob("d/?.txt") == ["d/a.txt", "d/b.txt"]
    assert go_glob("d/[^a].txt") == ["d/b.txt"]
    assert go_glob("d/[a-b].*") == ["d/a.txt", "d/b.txt"]
    assert go_glob("*/*.bin") == ["e/z.bin"]
    assert go_glob("./d/c.*") == ["d/c.log"]
    assert go_glob("d/c.log") == ["d/c.log"]
    assert go_glob("d/nothing*") == [] and go_glob("d/nothing") == []
    assert go_glob("d/\\*") == []
    assert go_glob(os.path.abspath("e") + "/*") == [os.path.abspath("e/z.bin")]
    for bad in ("d/[", "d/[]", "d/x\\"):
        with pytest.raises(ValueError):
            go_glob(bad)


def test_artifice_replaces_the_artifact(run):
    write("out/a.txt", "a")
    write("out/b.txt", "b")
    out = run.pp(ArtificePostProcessor, {"files": ["out/*.txt", "none*", "out/a.txt"]},
                 files_art("builder.img", generated_data={"ID": "x"}))
    assert out.files() == ["out/a.txt", "out/b.txt", "out/a.txt"]
    assert out.builder_id == "packer.post-processor.artifice"
    assert out.id() == ""
    assert out.string() == "Created artifact from files: out/a.txt, out/b.txt, out/a.txt"
    assert out.state("generated_data") is None
    assert run.say() == ["Discarding files from artifact: builder.img",
                         "Using these artifact files: out/a.txt, out/b.txt, out/a.txt"]
    assert ArtificePostProcessor.default_keep == (True, False)


def test_artifice_no_discard_line_for_empty_input_and_destroy(run):
    write("keep/d/f.txt", "f")
    out = run.pp(ArtificePostProcessor, {"files": ["keep/d"]}, NULL_ART)
    assert run.say() == ["Using these artifact files: keep/d"]
    out.destroy()
    assert not os.path.exists("keep/d")


def test_artifice_needs_files_and_rejects_bad_patterns(run):
    with pytest.raises(ConfigProblems, match="at least one"):
        decode(ArtificePostProcessor, {})
    with pytest.raises(StepError, match="bad pattern"):
        run.pp(ArtificePostProcessor, {"files": ["[z-a]"]}, NULL_ART)


# =========================================================================== checksum


ALL_TYPES = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]


def test_checksum_values_for_every_type(run, two_files):
    out = run.pp(ChecksumPostProcessor, {"checksum_types": ALL_TYPES,
                                         "output": "sums/{{.BuildName}}.{{.ChecksumType}}"},
                 files_art(*two_files))
    for kind in ALL_TYPES:
        lines = open(f"sums/null.{kind}").read()
        expected = "".join(
            f"{hashlib.new(kind, open(p, 'rb').read()).hexdigest()}\t{os.path.basename(p)}\n"
            for p in two_files)
        assert lines == expected
    assert out.files() == two_files + [f"sums/null.{k}" for k in ALL_TYPES]
    assert out.builder_id == "packer.post-processor.checksum" and out.id() == ""
    assert out.string() == "Created artifact from files: " + ", ".join(out.files())
    assert ChecksumPostProcessor.default_keep == (True, True)


def test_checksum_default_output_and_append(run, two_files):
    run.pp(ChecksumPostProcessor, {}, files_art(two_files[0]))
    out = run.pp(ChecksumPostProcessor, {}, files_art(two_files[0]))
    md5 = hashlib.md5(open(two_files[0], "rb").read()).hexdigest()
    assert open("packer_null_null_md5.checksum").read() == f"{md5}\ta.txt\n" * 2
    # the file existed before this run, so it is not part of the new artifact
    assert out.files() == [two_files[0]]


def test_checksum_one_file_for_all_types(run, two_files):
    out = run.pp(ChecksumPostProcessor, {"checksum_types": ["sha1", "md5"], "output": "all.sum"},
                 files_art(two_files[0]))
    data = open(two_files[0], "rb").read()
    assert open("all.sum").read() == (f"{hashlib.sha1(data).hexdigest()}\ta.txt\n"
                                      f"{hashlib.md5(data).hexdigest()}\ta.txt\n")
    assert out.files() == [two_files[0], "all.sum"]


def test_checksum_generated_data_and_empty_types(run, two_files):
    run.pp(ChecksumPostProcessor, {"output": "{{.ID}}.sum"},
           files_art(two_files[0], generated_data={"ID": "img-7"}))
    assert os.path.exists("img-7.sum")
    out = run.pp(ChecksumPostProcessor, {"checksum_types": [], "output": "none.sum"},
                 files_art(two_files[0]))
    assert not os.path.exists("none.sum") and out.files() == [two_files[0]]


def test_checksum_rejects_unknown_type_and_missing_file(run):
    with pytest.raises(ConfigProblems, match="crc32"):
        decode(ChecksumPostProcessor, {"checksum_types": ["md5", "crc32"]})
    with pytest.raises(StepError, match="gone.bin"):
        run.pp(ChecksumPostProcessor, {}, files_art("gone.bin"))
