"""The SSH communicator's file transfers: upload and download of files and trees over scp
(Packer's default) or SFTP, each retried once over a re-opened connection."""

from __future__ import annotations

import fnmatch
import io
import os
import posixpath
import stat
import time
from typing import Any, BinaryIO, Callable, Iterable

from ...sdk.communicator import CommunicatorError
from ...sdk.plugin import Cancelled, StepError
from .connect import MAX_PACKET, WINDOW_SIZE, _describe
from .transfer import (
    _apply_attrs,
    _excluded,
    _glob_quote,
    _q,
    _scp_ack,
    _scp_finish,
    _scp_send_children,
    _scp_send_dir,
    _scp_send_file,
    _ScpReceiver,
    _sftp_mkdir_p,
    _transfer_error,
)


class SSHFileTransfer:
    """Part of SSHCommunicator (communicator.py): its attributes are the communicator's."""

    def upload(self, dst: str, src: str | bytes, mode: int | None = None) -> None:
        if isinstance(src, (bytes, bytearray, memoryview)):
            data = bytes(src)
            size, mtime = len(data), time.time()
            fmode = 0o644 if mode is None else mode

            def opener() -> BinaryIO:
                return io.BytesIO(data)
        else:
            try:
                st = os.stat(src)
            except OSError as e:
                raise CommunicatorError(f"upload of {src} failed: {e.strerror or e}") from e
            size, mtime = st.st_size, st.st_mtime
            fmode = stat.S_IMODE(st.st_mode) if mode is None else mode

            def opener() -> BinaryIO:
                return open(src, "rb")

        self._with_retry(
            lambda: self._upload_file(dst, opener, size, fmode, mtime), f"upload to {dst}"
        )

    def _upload_file(
        self, dst: str, opener: Callable[[], BinaryIO], size: int, mode: int, mtime: float
    ) -> None:
        if self.settings.file_transfer == "sftp":
            sftp = self._sftp_client()
            with opener() as f:
                sftp.putfo(f, dst, file_size=size, confirm=True)
            sftp.chmod(dst, mode)
            return
        chan = self._scp_session(f"scp -ptd -- {_q(posixpath.dirname(dst) or '.')}")
        try:
            _scp_ack(chan)
            with opener() as f:
                _scp_send_file(chan, posixpath.basename(dst), f, size, mode, mtime)
            _scp_finish(chan)
        finally:
            chan.close()

    def upload_dir(self, dst: str, src: str, exclude: Iterable[str] = ()) -> None:
        exclude = list(exclude)
        root = src.rstrip("/") or "/"
        if not os.path.isdir(root):
            raise CommunicatorError(f"upload of {src} failed: not a directory")
        into_contents = src.endswith("/")
        self._mkdir_p(dst)
        if self.settings.file_transfer == "sftp":
            target = dst if into_contents else posixpath.join(dst, os.path.basename(root))
            self._with_retry(lambda: self._sftp_put_tree(root, target, exclude), f"upload to {dst}")
            return

        def send() -> None:
            chan = self._scp_session(f"scp -rpt -- {_q(dst)}")
            try:
                _scp_ack(chan)
                if into_contents:
                    _scp_send_children(chan, root, exclude)
                else:
                    _scp_send_dir(chan, root, os.path.basename(root), exclude)
                _scp_finish(chan)
            finally:
                chan.close()

        self._with_retry(send, f"upload of {src} to {dst}")

    def download(self, src: str, dst: str) -> None:
        def get() -> None:
            if self.settings.file_transfer == "sftp":
                sftp = self._sftp_client()
                st = sftp.stat(src)
                if stat.S_ISDIR(st.st_mode or 0):
                    raise CommunicatorError(f"{src} is a directory")
                sftp.get(src, dst)
                _apply_attrs(dst, st.st_mode, st.st_mtime)
                return
            chan = self._scp_session(f"scp -pf -- {_q(src)}")
            try:
                _ScpReceiver(chan, dst, single_file=True).run()
            finally:
                chan.close()

        self._with_retry(get, f"download of {src}")

    def download_dir(self, src: str, dst: str, exclude: Iterable[str] = ()) -> None:
        exclude = list(exclude)
        os.makedirs(dst, exist_ok=True)
        base = posixpath.basename(src.rstrip("/"))
        is_glob = any(c in base for c in "*?[")
        into_contents = src.endswith("/") or is_glob
        if self.settings.file_transfer == "sftp":
            self._with_retry(
                lambda: self._sftp_get_tree(src, dst, into_contents, is_glob, exclude),
                f"download of {src}",
            )
            return
        if is_glob:
            remote = f"{_q(posixpath.dirname(src) or '.')}/{_glob_quote(base)}"
        else:
            remote = _q(src.rstrip("/") or "/")

        def get() -> None:
            chan = self._scp_session(f"scp -rpf -- {remote}")
            try:
                _ScpReceiver(
                    chan,
                    dst,
                    single_file=False,
                    contents=into_contents and not is_glob,
                    exclude=exclude,
                ).run()
            finally:
                chan.close()

        self._with_retry(get, f"download of {src}")

    # -- file helpers ------------------------------------------------------------
    def _with_retry(self, fn: Callable[[], None], what: str) -> None:
        """Run a transfer; a connection that died is re-opened once and the transfer redone.

        Errors raised while the connection is alive come from the machine (no
        such directory, permission denied): they carry ``retryable = False`` so
        provisioners do not retry them for minutes.
        """
        for tries in (1, 2):
            try:
                fn()
                return
            except (Cancelled, StepError):
                raise
            except Exception as e:  # noqa: BLE001
                t = self._transport
                alive = t is not None and t.is_active()
                if not alive and tries == 1:
                    with self._lock:
                        self._sftp = None
                    continue
                if isinstance(e, CommunicatorError):
                    err = e
                    if not str(err).startswith(what):
                        err = CommunicatorError(f"{what} failed: {e}")
                else:
                    err = CommunicatorError(f"{what} failed: {_transfer_error(e)}")
                err.retryable = not alive  # type: ignore[attr-defined]
                if err is e:
                    raise
                raise err from e

    def _sftp_client(self) -> Any:
        with self._lock:
            t = self._live_transport()
            if (
                self._sftp is None
                or self._sftp.get_channel() is None
                or self._sftp.get_channel().closed
            ):
                import paramiko

                try:
                    self._sftp = paramiko.SFTPClient.from_transport(
                        t, window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET
                    )
                except Exception as e:  # noqa: BLE001
                    raise CommunicatorError(
                        f"cannot start SFTP on {self.settings.target.dest}: "
                        f"{_describe(e)} (is the sftp subsystem enabled? "
                        'ssh_file_transfer_method "scp" avoids it)'
                    ) from e
            return self._sftp

    def _scp_session(self, command: str) -> Any:
        chan = self._open_channel()
        try:
            chan.exec_command(command)
        except Exception as e:  # noqa: BLE001
            chan.close()
            raise CommunicatorError(
                f"cannot start scp on {self.settings.target.dest}: {_describe(e)}"
            ) from e
        return chan

    def _mkdir_p(self, path: str) -> None:
        if self.settings.file_transfer == "sftp":
            self._with_retry(lambda: _sftp_mkdir_p(self._sftp_client(), path), f"mkdir {path}")
            return
        lines: list[str] = []
        status = self.run(f"mkdir -p -- {_q(path)}", lambda _s, ls: lines.extend(ls), None)
        if status != 0:
            raise CommunicatorError(
                f"cannot create {path}: {' '.join(lines) or f'exit status {status}'}"
            )

    def _sftp_put_tree(self, root: str, target: str, exclude: list[str]) -> None:
        sftp = self._sftp_client()
        _sftp_mkdir_p(sftp, target)
        sftp.chmod(target, stat.S_IMODE(os.stat(root).st_mode))
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not _excluded(d, exclude))
            rel = os.path.relpath(dirpath, root)
            rdir = target if rel == "." else posixpath.join(target, *rel.split(os.sep))
            for d in dirnames:
                rpath = posixpath.join(rdir, d)
                try:
                    sftp.mkdir(rpath)
                except OSError:
                    pass  # exists
                sftp.chmod(rpath, stat.S_IMODE(os.stat(os.path.join(dirpath, d)).st_mode))
            for name in sorted(filenames):
                if _excluded(name, exclude):
                    continue
                lpath = os.path.join(dirpath, name)
                rpath = posixpath.join(rdir, name)
                st = os.stat(lpath)
                with open(lpath, "rb") as f:
                    sftp.putfo(f, rpath, file_size=st.st_size, confirm=True)
                sftp.chmod(rpath, stat.S_IMODE(st.st_mode))

    def _sftp_get_tree(
        self, src: str, dst: str, into_contents: bool, is_glob: bool, exclude: list[str]
    ) -> None:
        sftp = self._sftp_client()
        if is_glob:
            parent, pattern = posixpath.split(src)
            for attr in sorted(sftp.listdir_attr(parent or "."), key=lambda a: a.filename):
                if fnmatch.fnmatchcase(attr.filename, pattern) and not _excluded(
                    attr.filename, exclude
                ):
                    self._sftp_get_entry(
                        sftp,
                        posixpath.join(parent, attr.filename),
                        os.path.join(dst, attr.filename),
                        attr,
                        exclude,
                    )
            return
        root = src.rstrip("/") or "/"
        st = sftp.stat(root)
        if not stat.S_ISDIR(st.st_mode or 0):
            self._sftp_get_entry(
                sftp, root, os.path.join(dst, posixpath.basename(root)), st, exclude
            )
            return
        target = dst if into_contents else os.path.join(dst, posixpath.basename(root))
        self._sftp_get_entry(sftp, root, target, st, exclude)

    def _sftp_get_entry(
        self, sftp: Any, rpath: str, lpath: str, st: Any, exclude: list[str]
    ) -> None:
        if stat.S_ISDIR(st.st_mode or 0):
            os.makedirs(lpath, exist_ok=True)
            for attr in sorted(sftp.listdir_attr(rpath), key=lambda a: a.filename):
                if _excluded(attr.filename, exclude):
                    continue
                self._sftp_get_entry(
                    sftp,
                    posixpath.join(rpath, attr.filename),
                    os.path.join(lpath, attr.filename),
                    attr,
                    exclude,
                )
            _apply_attrs(lpath, st.st_mode, st.st_mtime)
        else:
            sftp.get(rpath, lpath)
            _apply_attrs(lpath, st.st_mode, st.st_mtime)
