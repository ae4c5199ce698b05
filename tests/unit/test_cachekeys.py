"""Cache keys: every input the provisioner cache documents changes a key, nothing else does,
and a sensitive value never appears in a key's manifest."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field

import pytest
from kiln.backend.engine import cachekeys as K


@dataclass
class Shell:
    inline: list[str] = field(default_factory=list)
    script: str = ""
    scripts: list[str] = field(default_factory=list)
    environment_vars: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._random_file = os.urandom(4).hex()  # chosen per run: never part of a key


@dataclass
class File:
    source: str = ""
    sources: list[str] = field(default_factory=list)
    destination: str = "/x"
    direction: str = "upload"
    generated: bool = False


SECRET = b"k" * 32


def key(ptype, config, parent="p", secrets=()):
    return K.digest(K.provisioner_manifest(parent, ptype, config, list(secrets), SECRET))


def test_config_changes_change_the_key_and_per_run_attributes_do_not():
    a = key("shell", Shell(inline=["echo a"]))
    assert a == key("shell", Shell(inline=["echo a"]))
    assert a != key("shell", Shell(inline=["echo b"]))
    assert a != key("shell", Shell(inline=["echo a"]), parent="q")
    assert a != key("file", Shell(inline=["echo a"]))
    assert key("shell", Shell(environment_vars=["A=1"])) != key("shell", Shell(environment_vars=["A=2"]))


def test_script_bytes_and_mode_count_mtime_does_not(tmp_path):
    script = tmp_path / "s.sh"
    script.write_text("echo hi\n")
    script.chmod(0o644)
    cfg = Shell(script=str(script))
    first = key("shell", cfg)
    os.utime(script, (1, 1))
    assert key("shell", cfg) == first, "touch alone must be a hit"
    script.chmod(0o755)
    assert key("shell", cfg) != first, "a changed mode must be a miss"
    script.chmod(0o644)
    assert key("shell", cfg) == first
    script.write_text("echo hI\n")
    assert key("shell", cfg) != first, "one changed byte must be a miss"


def test_uploaded_directory_is_walked(tmp_path):
    d = tmp_path / "tree"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "a.txt").write_text("a")
    cfg = File(source=str(d))
    first = key("file", cfg)
    os.utime(d / "sub" / "a.txt", (5, 5))
    assert key("file", cfg) == first
    (d / "sub" / "new.txt").write_text("")
    second = key("file", cfg)
    assert second != first, "a new file in an uploaded directory must be a miss"
    (d / "sub" / "new.txt").rename(d / "sub" / "renamed.txt")
    assert key("file", cfg) != second, "a renamed file must be a miss"
    (d / "empty").mkdir()
    assert key("file", cfg) != second


def test_missing_input_is_recorded_not_fatal(tmp_path):
    m = K.provisioner_manifest("p", "shell", Shell(script=str(tmp_path / "gone.sh")), [], SECRET)
    assert "missing" in m["inputs"][str(tmp_path / "gone.sh")]


def test_sensitive_values_are_sealed_with_the_machine_secret():
    cfg = Shell(environment_vars=["PW=hunter2-pass"], inline=["login hunter2-pass"])
    m = K.provisioner_manifest("p", "shell", cfg, ["hunter2-pass"], SECRET)
    text = json.dumps(m)
    assert "hunter2-pass" not in text
    assert "<sensitive:" in text
    # a changed secret is still a miss, and another machine's secret gives another key
    other = K.provisioner_manifest("p", "shell", Shell(environment_vars=["PW=hunter3-pass"],
                                   inline=["login hunter3-pass"]), ["hunter3-pass"], SECRET)
    assert K.digest(other) != K.digest(m)
    elsewhere = K.provisioner_manifest("p", "shell", cfg, ["hunter2-pass"], b"z" * 32)
    assert K.digest(elsewhere) != K.digest(m)


def test_machine_secret_is_private_and_stable(tmp_path):
    state = tmp_path / "state"
    s1 = K.machine_secret(str(state))
    assert len(s1) == 32
    path = state / K.SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert K.machine_secret(str(state)) == s1


def test_machine_secret_never_follows_a_symlink(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    target = tmp_path / "elsewhere"
    os.symlink(target, state / K.SECRET_FILE)
    with pytest.raises(OSError):
        K.machine_secret(str(state))
    assert not target.exists()


def test_uncacheable_provisioners():
    assert K.uncacheable_reason("shell-local", Shell())
    assert K.uncacheable_reason("breakpoint", Shell())
    assert K.uncacheable_reason("file", File(direction="download"))
    assert K.uncacheable_reason("file", File(generated=True))
    assert not K.uncacheable_reason("file", File(source="x"))
    assert not K.uncacheable_reason("shell", Shell())


def test_builder_settings_leave_out_what_happens_after_provisioning():
    @dataclass
    class Docker:
        image: str = "img"
        commit: bool = False
        export_path: str = ""
        run_command: list[str] = field(default_factory=lambda: ["-d"])
        login_password: str = ""

    a = K.builder_settings(Docker())
    assert K.builder_settings(Docker(commit=True, export_path="x.tar", login_password="p")) == a
    assert K.builder_settings(Docker(run_command=["-d", "-t"])) != a


def test_ansible_reads_the_directories_beside_its_playbook(tmp_path):
    @dataclass
    class Ansible:
        playbook_file: str = ""
        galaxy_file: str = ""
        inventory_file: str = ""

    (tmp_path / "roles" / "web").mkdir(parents=True)
    (tmp_path / "roles" / "web" / "main.yml").write_text("- x\n")
    pb = tmp_path / "site.yml"
    pb.write_text("- hosts: all\n")
    cfg = Ansible(playbook_file=str(pb))
    first = key("ansible", cfg)
    (tmp_path / "roles" / "web" / "main.yml").write_text("- y\n")
    assert key("ansible", cfg) != first


def test_manifest_diff_names_the_changed_input(tmp_path):
    script = tmp_path / "s.sh"
    script.write_text("a")
    old = K.provisioner_manifest("p", "shell", Shell(script=str(script)), [], SECRET)
    script.write_text("b")
    new = K.provisioner_manifest("p", "shell", Shell(script=str(script)), [], SECRET)
    diff = "\n".join(K.manifest_diff(old, new))
    assert str(script) in diff and "sha256" in diff


# -- kiln dev: what counts as a change, and when a rerun starts -------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_twenty_saves_within_300ms_make_one_batch():
    from kiln.backend.engine.dev import Debouncer

    clock = FakeClock()
    d = Debouncer(quiet=0.5, max_wait=3.0, clock=clock)
    for _ in range(20):
        d.add(["/p/files/two.sh"])
        clock.now += 0.015
        assert d.take() is None
    clock.now += 0.47  # 485 ms after the last save
    assert d.take() is None, "the quiet window is 500 ms"
    clock.now += 0.02
    assert d.take() == {"/p/files/two.sh"}
    clock.now += 5
    assert d.take() is None


def test_a_steady_stream_of_saves_still_reruns_after_the_maximum_wait():
    from kiln.backend.engine.dev import Debouncer

    clock = FakeClock()
    d = Debouncer(quiet=0.5, max_wait=3.0, clock=clock)
    batches = []
    for _ in range(40):  # a save every 100 ms for 4 s: never 500 ms of quiet
        d.add(["/p/a.sh"])
        clock.now += 0.1
        got = d.take()
        if got:
            batches.append(clock.now)
    assert len(batches) == 1 and batches[0] - 1000.0 <= 3.1


@pytest.mark.parametrize("name", [".two.sh.swp", ".two.sh.swx", "two.sh~", "4913", ".#two.sh",
                                  "#two.sh#", "two.sh___jb_tmp___"])
def test_editor_temp_files_never_count(name):
    from kiln.backend.engine.dev import Debouncer, Inputs, ignored

    assert ignored(f"/p/files/{name}")
    d = Debouncer(quiet=0.0, clock=FakeClock())
    d.add([f"/p/files/{name}"])
    assert d.take() is None
    inputs = Inputs(["/p/t.json"], ["/p/files"])
    assert not inputs.wants(f"/p/files/{name}")


def test_git_and_state_dirs_never_count_and_only_inputs_do():
    from kiln.backend.engine.dev import Inputs

    inputs = Inputs(["/p/t.json", "/p/files/two.sh"], ["/p/tree"])
    assert inputs.wants("/p/t.json") and inputs.wants("/p/files/two.sh")
    assert inputs.wants("/p/tree/sub/a.txt")
    assert not inputs.wants("/p/tree/.git/index")
    assert not inputs.wants("/p/.kiln/history.db")
    assert not inputs.wants("/p/files/other.sh")
    assert not inputs.wants("/p/treehouse/x")
    assert inputs.roots() == [] or all(r.startswith("/") for r in inputs.roots())


# -- the cache never fails a build -------------------------------------------------------------


class _UI:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, text: str) -> None:
        self.errors.append(text)


def _runner(provisioners):
    from types import SimpleNamespace

    from kiln.backend.engine.prepare import Options

    prepared = SimpleNamespace(type="docker", provisioners=provisioners, secrets=[])
    session = SimpleNamespace(template=SimpleNamespace(sensitive_values=[]))
    return SimpleNamespace(options=Options(), prepared=prepared, session=session)


def _prov(ptype, config):
    from types import SimpleNamespace

    return SimpleNamespace(definition=SimpleNamespace(type=ptype, name="", label=ptype),
                           plugin=SimpleNamespace(config=config))


class _Driver:
    def __init__(self, fail_find: bool = False, have: set[str] | None = None):
        self.fail_find = fail_find
        self.have = have or set()

    def base_image_id(self) -> str:
        return "sha256:" + "0" * 64

    def builder_config(self):
        return File(source="", destination="")

    def find(self, key: str) -> str:
        if self.fail_find:
            raise RuntimeError("engine went away")
        return "sha256:img-" + key if key in self.have else ""

    def touch(self, keys) -> None:
        pass


def test_an_engine_error_during_lookup_turns_the_cache_off_instead_of_failing_the_build():
    from types import SimpleNamespace

    from kiln.backend.engine.provcache import BuildCache

    cache = BuildCache(_runner([_prov("shell", Shell(inline=["true"]))]))
    ui = _UI()
    assert cache.lookup(SimpleNamespace(ui=ui), _Driver(fail_find=True)) == ""
    assert cache.hits == 0 and cache.stopped
    assert ui.errors and "cache is off" in ui.errors[0]


def test_lookup_takes_the_longest_cached_prefix_and_stops_at_an_uncacheable_step():
    from types import SimpleNamespace

    from kiln.backend.engine.provcache import BuildCache

    provs = [_prov("shell", Shell(inline=["a"])), _prov("shell", Shell(inline=["b"])),
             _prov("shell-local", Shell(inline=["c"])), _prov("shell", Shell(inline=["d"]))]
    cache = BuildCache(_runner(provs))
    cache.compute(_Driver().base_image_id(), _Driver().builder_config())
    assert len(cache.keys) == 2  # nothing after shell-local has a key
    have = {cache.keys[0]}
    start = BuildCache(_runner(provs)).lookup(SimpleNamespace(ui=_UI()), _Driver(have=have))
    assert start == "sha256:img-" + cache.keys[0]
