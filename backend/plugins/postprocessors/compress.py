"""The compress post-processor: pack the artifact's files into one archive.

The format comes from the extensions of ``output`` (before rendering), or of
``output + "." + format``: ``.tar``/``.zip`` make an archive, ``.gz`` ``.bgzf``
``.lz4`` ``.xz`` ``.bzip2`` a compressed stream, both together (``x.tar.gz``)
a compressed tar; anything else (``x``, ``x.tgz``) is a gzipped tar. A stream
without an archive compresses exactly one file.

Archives are written as Packer writes them: tar entries are named by the
file's base name with its mode, owner and a zero modification time (GNU
format, no padding after the end marker); zip entries keep the path as given,
deflated, without times or modes.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

from ...sdk.config import Deferred, opt
from ...sdk.plugin import Artifact, PostProcessor, StepError
from ..shell_local_common import render_runtime

BUILDER_ID = "packer.post-processor.compress"
DEFAULT_OUTPUT = "packer_{{.BuildName}}_{{.BuilderType}}"
CHUNK = 1 << 20

_EXT_RE = re.compile(r"\.([a-z0-9]+)")
_ALGORITHMS = {"gz": "gzip", "lz4": "lz4", "bgzf": "bgzf", "xz": "xz", "bzip2": "bzip2"}


def detect_format(output: str, fmt: str = "") -> tuple[str, str]:
    """(archive, algorithm) for an output path: archive is "tar", "zip" or "";
    algorithm is "gzip", "bgzf", "lz4", "xz", "bzip2" or "" (none)."""
    exts = _EXT_RE.findall(f"{output}.{fmt}" if fmt else output)
    if not exts:
        return "tar", "gzip"
    last = exts[-1]
    before = exts[-2] if len(exts) > 1 else ""
    if last in ("zip", "tar"):
        return last, ""
    archive = "tar" if before == "tar" else ""
    if last in _ALGORITHMS:
        return archive, _ALGORITHMS[last]
    return "tar", "gzip"


@dataclass
class CompressConfig:
    output: Deferred = opt(Deferred(DEFAULT_OUTPUT), doc="archive path; may use {{.BuildName}}, "
                           "{{.BuilderType}} and the artifact's generated data")
    format: str = opt("", doc="force the format, as if output ended in .<format>")
    compression_level: int = opt(0, doc="1 (fastest) to 9 (smallest); 0 or -1: default (6)")

    def target_template(self) -> str:
        return str(self.output or DEFAULT_OUTPUT)

    def level(self) -> int:
        """The effective level; -1 means the algorithm's default."""
        n = self.compression_level
        if n > 9:
            return 9
        if n in (0, -1):
            return -1
        return n


class CompressPostProcessor(PostProcessor):
    type_name = "compress"
    Config = CompressConfig
    deferred_keys = ("output",)
    default_keep = (False, False)

    config: CompressConfig

    def post_process(self, ctx, ui, artifact: Artifact) -> Artifact:
        c = self.config
        archive, algorithm = detect_format(c.target_template(), c.format)
        data = dict(artifact.state("generated_data") or {})
        data.update(BuildName=ctx.build_name, BuilderType=ctx.build_type)
        target = render_runtime(ctx, c.target_template(), data, "output")
        files = artifact.files()
        level = c.level()
        if algorithm in ("gzip", "bgzf") and level < -2:
            raise StepError(f"invalid compression_level {c.compression_level}: "
                            "expected an integer from -1 to 9")
        if not archive and len(files) != 1:
            raise StepError("without tar or zip exactly one input file can be compressed; "
                            f"the artifact has {len(files)}: [{' '.join(files)}]")
        if algorithm == "lz4":
            _lz4_frame()  # fail before creating the output when lz4 is missing

        try:
            parent = os.path.dirname(target)
            if parent:
                os.makedirs(parent, mode=0o755, exist_ok=True)
            out = open(target, "wb")
        except OSError as e:
            raise StepError(f"cannot create the archive {target}: {e.strerror or e}") from e
        ok = False
        try:
            progress = _Progress(ctx, ui, files)
            stream = open_compressor(out, algorithm, level)
            if algorithm:
                ui.say(f"Compressing {target} with {algorithm}")
            if archive == "tar":
                ui.say(f"Writing tar archive {target} "
                       f"({algorithm or 'uncompressed'})")
                write_tar(files, stream, progress)
            elif archive == "zip":
                ui.say(f"Writing zip archive {target}")
                write_zip(files, stream, progress)
            else:
                ui.say(f"Compressing {files[0]} into {target}")
                copy_file(files[0], stream, progress)
            stream.close()
            ok = True
        finally:
            out.close()
            if not ok:  # no half-written archive is left behind
                try:
                    os.remove(target)
                except OSError:
                    pass
        ui.say(f"Archive {target} is complete")
        return Artifact(BUILDER_ID, id="", files=[target], files_must_exist=True,
                        string=f"compressed artifacts in: {target}")


# --------------------------------------------------------------------------- progress


class _Progress:
    """Byte progress for long compressions (quiet for the first seconds, then every few
    seconds); also where cancellation is noticed."""

    QUIET = 2.0  # seconds before the first report
    EVERY = 2.0

    def __init__(self, ctx, ui, files: list[str]):
        self.ctx = ctx
        self.ui = ui
        self.total = 0
        for f in files:
            try:
                self.total += os.stat(f).st_size
            except OSError:
                pass
        self.done = 0
        self._next = time.monotonic() + self.QUIET

    def add(self, n: int) -> None:
        self.ctx.cancel.check()
        self.done += n
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.EVERY
            mib = 1 << 20
            self.ui.progress(f"Compressed {self.done // mib} of {self.total // mib} MiB",
                             self.done, self.total or None)


# --------------------------------------------------------------------------- streams


class _Sink:
    """A write-only stream over the output file that counts what went through it."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self.pos = 0

    def write(self, b: bytes) -> int:
        if b:
            self.f.write(b)
            self.pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        self.f.flush()


class _CodecStream(_Sink):
    """Feeds bytes through ``compress``; ``finish`` returns the tail."""

    def __init__(self, f: BinaryIO, compress: Callable[[bytes], bytes],
                 finish: Callable[[], bytes]):
        super().__init__(f)
        self._compress = compress
        self._finish = finish
        self.raw = 0

    def write(self, b: bytes) -> int:
        self.raw += len(b)
        self.f.write(self._compress(bytes(b)))
        return len(b)

    def tell(self) -> int:
        return self.raw

    def close(self) -> None:
        self.f.write(self._finish())
        self.f.flush()


def _deflater(level: int) -> Any:
    if level == -2:  # Go's HuffmanOnly
        return zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15, 8,
                                zlib.Z_HUFFMAN_ONLY)
    return zlib.compressobj(level, zlib.DEFLATED, -15, 8)


def _gzip_header(extra: bytes = b"", level: int = -1) -> bytes:
    flags = 0x04 if extra else 0
    xfl = 2 if level == 9 else (4 if level == 1 else 0)
    head = struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, flags, 0, xfl, 255)
    if extra:
        head += struct.pack("<H", len(extra)) + extra
    return head


class _GzipStream(_Sink):
    """One gzip member (what Go's gzip writers produce)."""

    def __init__(self, f: BinaryIO, level: int):
        super().__init__(f)
        self.f.write(_gzip_header(level=level))
        self._z = _deflater(level)
        self._crc = 0
        self.raw = 0

    def write(self, b: bytes) -> int:
        b = bytes(b)
        self._crc = zlib.crc32(b, self._crc)
        self.raw += len(b)
        self.f.write(self._z.compress(b))
        return len(b)

    def tell(self) -> int:
        return self.raw

    def close(self) -> None:
        self.f.write(self._z.flush())
        self.f.write(struct.pack("<II", self._crc, self.raw & 0xFFFFFFFF))
        self.f.flush()


# The BGZF end-of-file marker: an empty block, always these 28 bytes.
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
BGZF_BLOCK = 0xFF00  # input bytes per block, so a block never outgrows 64 KiB


class _BgzfStream(_Sink):
    """Blocked gzip (BGZF): a series of gzip members, each at most 64 KiB, each carrying
    its size in a ``BC`` extra field; any gzip reader reads it as one stream."""

    def __init__(self, f: BinaryIO, level: int):
        super().__init__(f)
        self.level = level
        self._buf = bytearray()
        self.raw = 0

    def write(self, b: bytes) -> int:
        self._buf += b
        self.raw += len(b)
        while len(self._buf) >= BGZF_BLOCK:
            self._block(bytes(self._buf[:BGZF_BLOCK]))
            del self._buf[:BGZF_BLOCK]
        return len(b)

    def _block(self, data: bytes) -> None:
        z = _deflater(self.level)
        body = z.compress(data) + z.flush()
        if len(body) + 26 > 0x10000:  # incompressible: store it
            z = zlib.compressobj(0, zlib.DEFLATED, -15)
            body = z.compress(data) + z.flush()
        size = len(body) + 25  # header 18 + trailer 8, minus one
        head = _gzip_header(b"BC" + struct.pack("<HH", 2, size), self.level)
        self.f.write(head + body + struct.pack("<II", zlib.crc32(data), len(data)))

    def tell(self) -> int:
        return self.raw

    def close(self) -> None:
        if self._buf:
            self._block(bytes(self._buf))
            self._buf.clear()
        self.f.write(BGZF_EOF)
        self.f.flush()


def _lz4_frame() -> Any:
    try:
        import lz4.frame
    except ImportError:
        raise StepError("lz4 compression needs the Python package lz4: pip install lz4") \
            from None
    return lz4.frame


def open_compressor(f: BinaryIO, algorithm: str, level: int) -> _Sink:
    """A stream that compresses what is written to it into ``f``."""
    if algorithm == "gzip":
        return _GzipStream(f, level)
    if algorithm == "bgzf":
        return _BgzfStream(f, level)
    if algorithm == "xz":
        import lzma

        c = lzma.LZMACompressor(format=lzma.FORMAT_XZ)
        return _CodecStream(f, c.compress, c.flush)
    if algorithm == "bzip2":
        import bz2

        c = bz2.BZ2Compressor(level if 1 <= level <= 9 else 9)
        return _CodecStream(f, c.compress, c.flush)
    if algorithm == "lz4":
        frame = _lz4_frame()
        c = frame.LZ4FrameCompressor(compression_level=max(level, 0))
        head = c.begin()
        f.write(head)
        return _CodecStream(f, c.compress, c.flush)
    return _Sink(f)


# --------------------------------------------------------------------------- archives


def _open_input(path: str) -> BinaryIO:
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise StepError(f"cannot archive {path}: it is a directory")
        return open(path, "rb")
    except OSError as e:
        raise StepError(f"cannot read {path}: {e.strerror or e}") from e


def _copy(src: BinaryIO, dst: Any, progress: _Progress | None) -> None:
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            return
        dst.write(chunk)
        if progress is not None:
            progress.add(len(chunk))


def copy_file(path: str, stream: _Sink, progress: _Progress | None = None) -> None:
    with _open_input(path) as src:
        _copy(src, stream, progress)


def _names(st: os.stat_result) -> tuple[str, str]:
    try:
        uname = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        uname = ""
    try:
        gname = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        gname = ""
    return uname, gname


def _go_header(buf: bytes) -> bytes:
    """Go fills the device fields of every header with octal zeros where Python leaves NULs;
    do the same (and fix the checksum) so our tars are byte-for-byte Packer's."""
    head = bytearray(buf[-tarfile.BLOCKSIZE:])
    head[329:345] = b"0000000\0" * 2
    head[148:156] = b" " * 8
    head[148:156] = b"%06o\0 " % sum(head)
    return buf[:-tarfile.BLOCKSIZE] + bytes(head)


def write_tar(files: list[str], stream: _Sink, progress: _Progress | None = None) -> None:
    """A GNU tar of ``files`` (entries by base name, zero mtime), ended by two zero blocks."""
    for path in files:
        with _open_input(path) as src:
            st = os.fstat(src.fileno())
            info = tarfile.TarInfo(os.path.basename(path))
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid, info.gid = st.st_uid, st.st_gid
            info.uname, info.gname = _names(st)
            info.size = st.st_size
            info.mtime = 0
            info.type = tarfile.REGTYPE
            stream.write(_go_header(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")))
            written = 0
            while written < st.st_size:
                chunk = src.read(min(CHUNK, st.st_size - written))
                if not chunk:
                    raise StepError(f"{path} shrank while it was being archived")
                stream.write(chunk)
                written += len(chunk)
                if progress is not None:
                    progress.add(len(chunk))
            pad = -written % tarfile.BLOCKSIZE
            if pad:
                stream.write(b"\0" * pad)
    stream.write(b"\0" * (2 * tarfile.BLOCKSIZE))


def write_zip(files: list[str], stream: _Sink, progress: _Progress | None = None) -> None:
    """A zip of ``files``, each entry named by the path as given, deflated."""
    with zipfile.ZipFile(stream.f, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            name = path.replace(os.sep, "/")
            with _open_input(path) as src:
                info = zipfile.ZipInfo(name, date_time=(1980, 0, 0, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 0
                info.file_size = os.fstat(src.fileno()).st_size
                with zf.open(info, "w") as dst:
                    _copy(src, dst, progress)
