"""Random small Packer templates for the generated differential test.

``local_case(seed)`` and ``docker_case(seed)`` each return a :class:`Case`: a JSON template,
the files it reads, and command-line arguments. The same seed always gives the same case,
so a difference found by a long run is reproduced with one seed.

Local cases: null and file builders, shell-local provisioners with only/except (lists, or a
single name as Packer's weak decoding allows), override, pause_before, timeout,
valid_exit_codes, environment_vars, only_on and template functions; an error-cleanup
provisioner; post-processor chains of manifest, artifice, compress, checksum and
shell-local with only/except, names and keep_input_artifact; user variables, some set with
-var; -only/-except on the command line. Docker cases: a busybox container committed,
exported or discarded, shell and file provisioners, changes, and docker-tag / docker-import
/ docker-save / manifest post-processors.

What either tool would print differently on purpose (README: differences from Packer) is
left out: templates stay within what both should do alike.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

WORDS = ("alpha", "beta", "gamma", "two words", "it's", "semi;colon", "x=y", "dollar$sign",
         "back\\slash", "ünïcode", "a,b", "")
FUNCS = (
    "{{build_name}}", "{{build_type}}", "{{upper `mixed Case`}}", "{{lower `MiXeD`}}",
    "{{split `a-b-c` `-` 1}}", "{{replace_all `-` `+` `x-y-z`}}", "{{replace `o` `0` 1 `foo`}}",
    "{{ build_name | upper }}", "{{pwd}}", "{{template_dir}}", "{{packer_version}}",
    '{{printf "%03d" 7}}', "{{ `raw` }}",
)
PP_WORDS = ("{{build_name}}", "{{build_type}}", "{{user `v0`}}", "{{ build `ID` }}")


@dataclass
class Case:
    seed: int
    kind: str
    template: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (f"{self.kind} case, seed {self.seed}; args {self.args}\nfiles "
                f"{json.dumps(self.files)}\n{json.dumps(self.template, indent=2)}")


def _chance(rng: random.Random, p: float) -> bool:
    return rng.random() < p


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


class _Local:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.seed = seed
        self.vars: list[str] = []
        self.names: list[str] = []
        self.file_builders: list[str] = []
        self.outputs = 0

    # -- pieces ------------------------------------------------------------------------
    def word(self) -> str:
        return self.rng.choice(WORDS)

    def line(self, env_keys: list[str]) -> str:
        rng = self.rng
        kind = rng.randrange(8)
        if kind == 0 and self.vars:
            return f"echo var={{{{user `{rng.choice(self.vars)}`}}}}"
        if kind == 1 and env_keys:
            key = rng.choice(env_keys)
            return f'echo "{key}=${key}"'
        if kind == 2:
            return "echo $PACKER_BUILD_NAME $PACKER_BUILDER_TYPE"
        if kind == 3:
            return "mkdir -p gen && echo {{build_name}} " + _shell_quote(self.word()) + \
                " >> gen/{{build_name}}.txt"
        if kind == 4:
            return "printf '%s\\n' " + _shell_quote(self.word())
        if kind == 5:
            return "echo " + rng.choice(FUNCS)
        if kind == 6:
            return "echo " + _shell_quote(self.word()) + " 1>&2"
        return "echo " + _shell_quote(self.word()) + " " + rng.choice(FUNCS)

    def names_subset(self, weak: bool) -> Any:
        rng = self.rng
        pick = rng.sample(self.names, rng.randint(1, len(self.names)))
        if weak and len(pick) == 1 and _chance(rng, 0.4):
            return pick[0]  # Packer decodes a provisioner's single name as a list of one
        return pick

    def env_vars(self) -> tuple[list[str], list[str]]:
        rng = self.rng
        keys = rng.sample(["K1", "K2", "SPACED", "QUOTE", "EMPTY"], rng.randint(1, 3))
        values = {"K1": "one", "K2": "{{build_name}}", "SPACED": "a b  c", "QUOTE": "it's",
                  "EMPTY": ""}
        return keys, [f"{k}={values[k]}" for k in keys]

    # -- sections ------------------------------------------------------------------------
    def variables(self) -> dict[str, str]:
        rng = self.rng
        out: dict[str, str] = {}
        for i in range(rng.randint(0, 3)):
            name = f"v{i}"
            if i and _chance(rng, 0.5):
                out[name] = f"{{{{user `v{i - 1}`}}}}-{i}"
            else:
                out[name] = rng.choice(["plain", "with space", "{{upper `up`}}", "semi;colon"])
            self.vars.append(name)
        return out

    def builders(self) -> list[dict[str, Any]]:
        rng = self.rng
        count = rng.choice([1, 1, 2, 2, 3])
        out = []
        for i in range(count):
            kind = "file" if _chance(rng, 0.3) else "null"
            named = count > 1 or _chance(rng, 0.4)
            name = ["red", "green", "blue"][i] if named else kind
            if not named and any(b.get("name", b["type"]) == kind for b in out):
                name = f"{kind}{i}"
                named = True
            b: dict[str, Any] = {"type": kind}
            if named:
                b["name"] = name
            if kind == "null":
                b["communicator"] = "none"
            else:
                b["target"] = f"build/{name}.txt"
                b["content"] = f"content of {name}\n"
                self.file_builders.append(name)
            self.names.append(name)
            out.append(b)
        return out

    def provisioner(self, failing_ok: bool) -> dict[str, Any]:
        rng = self.rng
        p: dict[str, Any] = {"type": "shell-local"}
        env_keys: list[str] = []
        if _chance(rng, 0.35):
            env_keys, p["environment_vars"] = self.env_vars()
        lines = [self.line(env_keys) for _ in range(rng.randint(1, 4))]
        if failing_ok and _chance(rng, 0.2):
            code = rng.choice([1, 2, 3])
            lines.append(f"exit {code}")
            if _chance(rng, 0.5):
                p["valid_exit_codes"] = rng.choice([[0, code], f"0,{code}"])
        p["inline"] = lines
        if _chance(rng, 0.25):
            p["only" if _chance(rng, 0.5) else "except"] = self.names_subset(weak=True)
        if _chance(rng, 0.15):
            target = rng.choice(self.names)
            p["override"] = {target: {"inline": [f"echo overridden for {target}",
                                                 self.line(env_keys)]}}
        if _chance(rng, 0.15):
            p["pause_before"] = rng.choice(["1ms", "0s", 1000, "10ms"])
        if _chance(rng, 0.1):
            p["timeout"] = rng.choice(["30s", "1m"])
        if _chance(rng, 0.1):
            p["max_retries"] = 0  # retrying a failure waits seconds; zero is still read
        if _chance(rng, 0.08):
            p["only_on"] = rng.choice([["linux"], ["darwin", "windows"], "linux,darwin"])
        if _chance(rng, 0.1):
            p["execute_command"] = ["/bin/sh", "-c", "{{.Vars}} /bin/sh {{.Script}}"]
        if _chance(rng, 0.08):
            p["inline_shebang"] = "/bin/sh -x"
        return p

    def post_processor(self, first: bool) -> dict[str, Any] | str:
        rng = self.rng
        kind = rng.choice(["manifest", "manifest", "shell-local", "shell-local", "artifice",
                           "compress", "checksum"])
        if kind == "manifest" and _chance(rng, 0.2):
            return "manifest"  # the string form
        pp: dict[str, Any] = {"type": kind}
        if kind == "manifest":
            pp["output"] = rng.choice(["packer-manifest.json", "m-{{build_name}}.json",
                                       "all.json"])
            if _chance(rng, 0.5):
                pp["strip_path"] = True
            if _chance(rng, 0.5):
                pp["strip_time"] = True
            if _chance(rng, 0.4):
                pp["custom_data"] = {"k": rng.choice(PP_WORDS), "w": self.word()}
        elif kind == "shell-local":
            env_keys: list[str] = []
            if _chance(rng, 0.3):
                env_keys, pp["environment_vars"] = self.env_vars()
            pp["inline"] = [f"echo pp {rng.choice(PP_WORDS)}", self.line(env_keys)]
        elif kind == "artifice":
            pp["files"] = rng.choice([["gen/{{build_name}}.txt"], "gen/{{build_name}}.txt",
                                      ["build/{{build_name}}.txt", "nothing-here"]])
        elif kind == "compress":
            # every compress writes a file of its own: one that archives itself (the same
            # output later in a chain) makes Packer fail at random
            self.outputs += 1
            stem = f"out/{{{{.BuildName}}}}-{self.outputs}"
            outputs = [f"{stem}.tar.gz", f"{stem}.zip", f"{stem}-{{{{.BuilderType}}}}.tar"]
            if first and len(self.file_builders) == len(self.names):
                # one file in, one compressed file out; with any other number both tools
                # fail, and Packer leaves a partial file behind (README: differences)
                outputs.append(f"{stem}.gz")
            pp["output"] = rng.choice(outputs)
        else:
            pp["checksum_types"] = rng.choice([["md5"], ["sha1", "sha256"], "md5,sha512"])
            pp["output"] = "out/{{.BuildName}}_{{.ChecksumType}}.checksum"
        if _chance(rng, 0.2):
            pp["only" if _chance(rng, 0.5) else "except"] = self.names_subset(weak=False)
        if _chance(rng, 0.3):
            pp["keep_input_artifact"] = _chance(rng, 0.5)
        if _chance(rng, 0.15):
            pp["name"] = f"{kind}-named"
        return pp

    def build(self) -> Case:
        rng = self.rng
        template: dict[str, Any] = {}
        variables = self.variables()
        if variables:
            template["variables"] = variables
        template["builders"] = self.builders()
        template["provisioners"] = [self.provisioner(failing_ok=True)
                                    for _ in range(rng.randint(1, 4))]
        if _chance(rng, 0.1):
            template["error-cleanup-provisioner"] = {
                "type": "shell-local", "inline": ["echo cleaning up {{build_name}}"]}
        chains: list[Any] = []
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            size = rng.choice([1, 1, 2, 3])
            chain = [self.post_processor(i == 0) for i in range(size)]
            # after a compress, a checksum sums compressed data, whose bytes depend on the
            # compressor (so would a checksum of that checksum): leave those out
            types = [pp if isinstance(pp, str) else pp["type"] for pp in chain]
            if "compress" in types:
                cut = types.index("compress") + 1
                chain = chain[:cut] + [pp for pp, t in zip(chain[cut:], types[cut:],
                                                           strict=True) if t != "checksum"]
            chains.append(chain[0] if len(chain) == 1 and _chance(rng, 0.5) else chain)
        if chains:
            template["post-processors"] = chains
        args: list[str] = []
        if self.vars and _chance(rng, 0.2):
            args += ["-var", f"{self.vars[0]}=from cli"]
        if _chance(rng, 0.15):
            flag = rng.choice(["-only", "-except"])
            pick = rng.sample(self.names, rng.randint(1, len(self.names)))
            if flag == "-except" and _chance(rng, 0.3):
                pick = [rng.choice(["manifest", "shell-local", "compress-named", "nothing"])]
            args.append(f"{flag}={','.join(pick)}")
        if _chance(rng, 0.1):
            args.append("-parallel-builds=1")
        return Case(self.seed, "local", template, {}, args)


def local_case(seed: int) -> Case:
    return _Local(seed).build()


# --------------------------------------------------------------------------- docker

DOCKER_CHANGES = ('CMD ["echo", "hi"]', 'ENTRYPOINT ["/bin/echo"]', "ENV A=1 B=two",
                  "EXPOSE 8080", 'LABEL org.example.k="v w"', "ONBUILD RUN true", "USER nobody",
                  "VOLUME /data", "WORKDIR /srv")


def docker_case(seed: int, image: str) -> Case:
    rng = random.Random(seed)
    files = {"in/dir/one.txt": "one\n", "in/dir/sub/two.txt": "two\n", "in/file.txt": "file\n"}
    builder: dict[str, Any] = {"type": "docker", "image": image, "pull": False}
    outcome = rng.choice(["commit", "commit", "export", "discard"])
    if outcome == "commit":
        builder["commit"] = True
        if _chance(rng, 0.6):
            builder["changes"] = rng.sample(DOCKER_CHANGES, rng.randint(1, 4))
        if _chance(rng, 0.2):
            builder["author"] = "Generated <gen@example.com>"
    elif outcome == "export":
        builder["export_path"] = "out/container.tar"
    else:
        builder["discard"] = True
    provisioners: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["shell", "shell", "file"])
        if kind == "shell":
            p: dict[str, Any] = {"type": "shell", "inline": [
                rng.choice(["echo in {{build_name}} $(id -u)", "echo $K1-$K2",
                            "ls / | head -3", "echo err 1>&2", "pwd",
                            "echo {{user `tag`}} id={{build `ID`}}"])]}
            if _chance(rng, 0.4):
                p["environment_vars"] = ["K1=one", "K2=two words"]
            if _chance(rng, 0.2):
                p["use_env_var_file"] = True
            if _chance(rng, 0.15):
                p["inline"].append("exit 3")
                if _chance(rng, 0.5):
                    p["valid_exit_codes"] = [0, 3]
            provisioners.append(p)
        else:
            src, dst = rng.choice([("in/dir", "/copied"), ("in/dir/", "/contents"),
                                   ("in/dir", "/tmp"), ("in/file.txt", "/tmp/"),
                                   ("in/file.txt", "/root/file.txt"),
                                   ("in/dir", "/missing/parent")])
            provisioners.append({"type": "file", "source": src, "destination": dst})
            provisioners.append({"type": "shell", "inline": [
                "find /copied /contents /tmp/dir /tmp/file.txt /root 2>/dev/null | sort"]})
    chain: list[dict[str, Any]] = []
    if outcome == "commit":
        chain.append({"type": "docker-tag", "repository": "{{user `repo`}}",
                      "tags": rng.choice([["latest"], ["latest", "{{user `tag`}}"]])})
    elif outcome == "export" and _chance(rng, 0.6):
        chain.append({"type": "docker-import", "repository": "{{user `repo`}}",
                      "tag": "latest"})
    if chain and _chance(rng, 0.3):
        chain.append({"type": "docker-save", "path": "out/image.tar"})
    if _chance(rng, 0.5):
        chain.append({"type": "manifest", "output": "docker-manifest.json", "strip_time": True})
    template: dict[str, Any] = {"variables": {"repo": "", "tag": "gen"},
                                "builders": [builder], "provisioners": provisioners}
    if chain:
        template["post-processors"] = [chain]
    return Case(seed, "docker", template, files, [])


# --------------------------------------------------------------------------- comparing


def drop_partial_archives(ref: Any, ours: Any) -> None:
    """Packer leaves behind the archive a failed compress had begun; Kiln removes it (README:
    differences). Forget such files of Packer's run for builds that failed in both runs."""
    import packer_diff

    failed = set(packer_diff.errored_builds(ref.machine)) & \
        set(packer_diff.errored_builds(ours.machine))
    for path in list(ref.changed_files()):
        if path not in ours.after and any(path.startswith(f"out/{b}-") for b in failed):
            ref.after.pop(path)
