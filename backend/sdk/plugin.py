"""The plugin interfaces: builders, steps, provisioners, post-processors, data sources,
artifacts (Packer's packer-plugin-sdk ``packer`` and ``multistep`` packages).

Every plugin module is imported lazily by the registry; heavy libraries
(docker, boto3, paramiko) are imported inside the functions that use them, so
importing a plugin module to validate its configuration stays cheap.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from .errors import Cancelled, StepError

if TYPE_CHECKING:
    from .context import BuildContext, StageUI

__all__ = ["PROVISION", "Artifact", "Builder", "Cancelled", "DataSource", "PostProcessor",
           "PrepareContext", "ProvisionMarker", "Provisioner", "Step", "StepError"]


# -- builders ---------------------------------------------------------------------


class Step(ABC):
    """One builder step: ``run`` then, in reverse order after later steps, ``cleanup``.

    The runner registers ``cleanup`` before calling ``run``, so a step that
    fails half-way is cleaned up too: record what exists only once it exists.
    """

    #: shown as the stage name ("Start container", "Create temporary key pair")
    title: ClassVar[str] = ""

    @property
    def name(self) -> str:
        return self.title or type(self).__name__

    @abstractmethod
    def run(self, ctx: BuildContext) -> None: ...

    def cleanup(self, ctx: BuildContext) -> None:  # noqa: B027 - optional hook
        pass


class ProvisionMarker:
    """Where, among a builder's steps, the provisioner stages go."""


PROVISION = ProvisionMarker()


class Builder(ABC):
    """A builder turns its config into steps and, after them, an artifact."""

    #: the template's ``type``
    type_name: ClassVar[str] = ""
    builder_id: ClassVar[str] = ""
    #: the configuration dataclass
    Config: ClassVar[type]
    #: generated data keys this builder adds for provisioners (``{{ build `X` }}``)
    generated_keys: ClassVar[tuple[str, ...]] = ()
    #: config keys that are rendered at run time rather than at prepare time
    deferred_keys: ClassVar[tuple[str, ...]] = ()
    #: a failed provisioner runs the error-cleanup provisioner (Packer's provision step
    #: does; its file builder runs the provisioners without that step)
    error_cleanup: ClassVar[bool] = True

    def __init__(self, config: Any):
        self.config = config

    def prepare(self, ctx: PrepareContext) -> list[str]:
        """Extra validation that needs more than the config (files exist...). Returns warnings."""
        return []

    @abstractmethod
    def steps(self, ctx: BuildContext) -> list[Step | ProvisionMarker]: ...

    @abstractmethod
    def artifact(self, ctx: BuildContext) -> Artifact | None: ...

    def communicator_config(self) -> Any:
        """The communicator section of the config (ssh/docker/none...), if any."""
        return None

    @classmethod
    def template_funcs(cls) -> dict[str, Any]:
        """Extra ``{{ }}`` functions this builder's config may use."""
        return {}


class PrepareContext:
    """What prepare-time checks may look at."""

    def __init__(self, template_dir: str, build_name: str, build_type: str, options: Any = None):
        self.template_dir = template_dir
        self.build_name = build_name
        self.build_type = build_type
        self.options = options

    def resolve(self, path: str) -> str:
        """Packer resolves relative paths against the working directory."""
        import os

        return os.path.abspath(os.path.expanduser(path))


# -- provisioners -----------------------------------------------------------------


class Provisioner(ABC):
    """A provisioner runs once per build, on the machine, through the build's communicator.

    ``provision`` gets the build context, the stage's UI, the communicator (``comm``; a
    ``NoneCommunicator`` for a build without one) and the template data (``{{ build `X` }}``).
    Raise ``StepError`` for a failure the user can act on; poll ``ctx.cancel``.
    """

    type_name: ClassVar[str] = ""
    Config: ClassVar[type]
    #: keys whose strings are NOT rendered at prepare time (rendered at run time)
    deferred_keys: ClassVar[tuple[str, ...]] = ()
    #: the provisioner needs a communicator that really runs commands
    needs_communicator: ClassVar[bool] = True

    def __init__(self, config: Any):
        self.config = config

    def prepare(self, ctx: PrepareContext) -> list[str]:
        return []

    @abstractmethod
    def provision(self, ctx: BuildContext, ui: StageUI, comm: Any, data: dict[str, Any]) -> None: ...

    def describe(self) -> str:
        """A short label for the stage ("shell-local: echo hi", "file: a.txt => /tmp")."""
        return ""


# -- post-processors --------------------------------------------------------------


class PostProcessor(ABC):
    """A post-processor turns the artifact of a build (or of the previous post-processor in
    its chain) into a new one; ``default_keep`` says whether the input artifact is kept."""

    type_name: ClassVar[str] = ""
    Config: ClassVar[type]
    deferred_keys: ClassVar[tuple[str, ...]] = ()
    #: (keep input artifact by default, force that default over the user's false)
    default_keep: ClassVar[tuple[bool, bool]] = (False, False)

    def __init__(self, config: Any):
        self.config = config

    def prepare(self, ctx: PrepareContext) -> list[str]:
        return []

    @abstractmethod
    def post_process(self, ctx: BuildContext, ui: StageUI, artifact: Artifact) -> Artifact | None:
        """Return the new artifact (or the input one, or None to end the chain)."""


# -- data sources ----------------------------------------------------------------


class DataSource(ABC):
    """An HCL2 ``data`` block: looked up once per build, before the builds are prepared.

    ``outputs`` names the attributes ``execute`` returns (validate treats them as unknown);
    ``execute`` gets ``add_secret`` to mask a value it read in every later output.
    """

    Config: ClassVar[type]
    outputs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any):
        self.config = config

    @abstractmethod
    def execute(self, add_secret: Callable[[str], None]) -> dict[str, Any]: ...


# -- artifacts --------------------------------------------------------------------


class Artifact:
    """The thing a build produced, as Packer models it."""

    builder_id: str = ""

    def __init__(
        self,
        builder_id: str,
        id: str = "",
        files: list[str] | None = None,
        string: str = "",
        state: dict[str, Any] | None = None,
        *,
        files_must_exist: bool = False,
    ):
        self.builder_id = builder_id
        self._id = id
        self._files = list(files or [])
        self._string = string
        self._state = state or {}
        #: destroying fails when a file is already gone (Packer's file, compress and docker
        #: export artifacts remove theirs with os.Remove; artifice and checksum do not care)
        self.files_must_exist = files_must_exist

    def id(self) -> str:
        return self._id

    def files(self) -> list[str]:
        return list(self._files)

    def string(self) -> str:
        return self._string

    def state(self, name: str) -> Any:
        return self._state.get(name)

    def destroy(self) -> None:
        import os

        for f in self._files:
            if not f:
                continue
            if os.path.isdir(f) and not os.path.islink(f):
                shutil.rmtree(f, ignore_errors=True)
            elif os.path.lexists(f):
                os.remove(f)
            elif self.files_must_exist:
                raise StepError(f"remove {f}: no such file or directory")

    def to_dict(self) -> dict[str, Any]:
        return {
            "builder_id": self.builder_id,
            "id": self.id(),
            "files": self.files(),
            "string": self.string(),
        }
