"""SFTP downloads (download kind ``sftp``), with paramiko.

Spec keys, with their defaults:

``host`` (required), ``port`` (22), ``username`` (required)
``password`` or ``key_file`` (a private key in OpenSSH or PEM form; ``key_passphrase`` if it
    is encrypted); with both, the key is tried first
``directory`` ("/"), ``timeout`` (60 seconds, for connecting and every read)
the server's host key, checked before any credential is sent, by the first of:
    ``host_key_sha256``: a pinned fingerprint as ``ssh-keygen -lf`` prints it
    (``SHA256:abc...``); ``known_hosts``: an OpenSSH known_hosts file;
    ``insecure_accept_any_host_key = true``: no check at all (sandbox and tests only);
    otherwise the user's ``~/.ssh/known_hosts``
plus the file-selection keys of :mod:`pipeline.connectors._files` (``pattern``,
``newest_first``, ``max_files``, ``only_new``, ``incremental_pattern``, ...).

Errors: refused, timed out or cut connections and SSH negotiation failures are
SourceUnavailable; refused credentials or permissions are SourceAuthError, and so is a host
key that differs from the one pinned or known; a missing directory is FeedNotFound; a host
with no trusted key on record is SourceConfigError.
"""

from __future__ import annotations

import datetime as dt
import errno
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import paramiko

from pipeline.connectors import FetchRequest, Payload, PayloadFile
from pipeline.connectors import _spec
from pipeline.connectors._files import (
    FileRules,
    RemoteFile,
    empty_payload,
    local_path,
    payload_file,
    select_files,
)
from pipeline.errors import (
    FeedNotFound,
    PipelineError,
    SourceAuthError,
    SourceConfigError,
    SourceUnavailable,
)

PREFETCH_REQUESTS = 64  # 32 KiB each: bounds what paramiko reads ahead of the disk


@dataclass(frozen=True)
class SftpSettings:
    """The connection part of a download spec."""

    host: str
    username: str
    port: int = 22
    password: str | None = None
    key_file: str | None = None
    key_passphrase: str | None = None
    directory: str = "/"
    timeout: float = 60.0
    host_key_sha256: str | None = None
    known_hosts: str | None = None
    insecure_accept_any_host_key: bool = False

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "SftpSettings":
        settings = cls(
            host=_spec.text(spec, "host"),
            username=_spec.text(spec, "username"),
            port=_spec.integer(spec, "port", 22, minimum=1),
            password=_spec.text(spec, "password", None),
            key_file=_spec.text(spec, "key_file", None),
            key_passphrase=_spec.text(spec, "key_passphrase", None),
            directory=_spec.text(spec, "directory", "/"),
            timeout=_spec.number(spec, "timeout", 60.0),
            host_key_sha256=_spec.text(spec, "host_key_sha256", None),
            known_hosts=_spec.text(spec, "known_hosts", None),
            insecure_accept_any_host_key=_spec.flag(spec, "insecure_accept_any_host_key", False),
        )
        if settings.password is None and settings.key_file is None:
            raise SourceConfigError("an sftp download needs download.password or download.key_file")
        return settings

    @property
    def where(self) -> str:
        return f"sftp://{self.host}:{self.port}{self.directory}"


class SftpConnector:
    """Downloads the matching files of one directory of an SFTP server."""

    kind: ClassVar[str] = "sftp"

    def fetch(self, request: FetchRequest) -> Payload:
        settings = SftpSettings.from_spec(request.spec)
        rules = FileRules.from_spec(request.spec, request.since)
        with translated(settings), logged_in(settings) as sftp:
            selection = select_files(_listing(sftp, settings), rules, request.state)
            if not selection.chosen:
                return empty_payload(selection, rules, settings.where)
            files = [_download(sftp, settings, remote, request) for remote in selection.chosen]
        return Payload(files=files, state=selection.state, complete=selection.complete)


@contextmanager
def logged_in(settings: SftpSettings) -> Iterator[paramiko.SFTPClient]:
    """An SFTP client, the host key checked and the user authenticated; closed when the block ends.

    Errors are paramiko's and the socket's; wrap the block in ``translated`` for pipeline errors.
    """
    sock = socket.create_connection((settings.host, settings.port), timeout=settings.timeout)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = transport.auth_timeout = settings.timeout
    try:
        _prefer_known_key_types(transport, settings)
        _check_host_key(_handshake(transport, settings), settings)
        _authenticate(transport, settings)
        sftp = paramiko.SFTPClient.from_transport(transport)
        sftp.get_channel().settimeout(settings.timeout)
        yield sftp
    finally:
        transport.close()


def _handshake(transport: paramiko.Transport, settings: SftpSettings) -> paramiko.PKey:
    """Negotiate the session; the server's host key."""
    transport.start_client(timeout=settings.timeout)
    if not transport.initial_kex_done:  # start_client returns quietly when its timeout passes
        raise SourceUnavailable(f"{settings.where}: no SSH handshake within {settings.timeout:g} s")
    return transport.get_remote_server_key()


def _known_keys(settings: SftpSettings) -> dict[str, paramiko.PKey]:
    """The keys on record for the host ({key type: key}), from known_hosts."""
    if settings.host_key_sha256 or settings.insecure_accept_any_host_key:
        return {}
    path = Path(settings.known_hosts or "~/.ssh/known_hosts").expanduser()
    keys = paramiko.HostKeys()
    try:
        keys.load(str(path))
    except FileNotFoundError:
        if settings.known_hosts:
            raise SourceConfigError(f"download.known_hosts: no file {path}") from None
        return {}
    name = settings.host if settings.port == 22 else f"[{settings.host}]:{settings.port}"
    return dict(keys.lookup(name) or {})


def _prefer_known_key_types(transport: paramiko.Transport, settings: SftpSettings) -> None:
    """Ask for a host key type we have on record, so a server with several keys sends that one."""
    known = list(_known_keys(settings))
    if known:
        options = transport.get_security_options()
        options.key_types = known + [t for t in options.key_types if t not in known]


def _check_host_key(key: paramiko.PKey, settings: SftpSettings) -> None:
    if settings.insecure_accept_any_host_key:
        return
    if settings.host_key_sha256:
        if _fingerprint(settings.host_key_sha256) != _fingerprint(key.fingerprint):
            raise SourceAuthError(
                f"{settings.where}: host key {key.fingerprint} is not the pinned {settings.host_key_sha256}"
            )
        return
    _check_known(key, _known_keys(settings), settings)


def _check_known(key: paramiko.PKey, known: dict[str, paramiko.PKey], settings: SftpSettings) -> None:
    if not known:
        raise SourceConfigError(
            f"{settings.where}: no trusted host key on record (its key is {key.fingerprint}); "
            "set download.host_key_sha256 or download.known_hosts"
        )
    if known.get(key.get_name()) != key:
        raise SourceAuthError(f"{settings.where}: host key {key.fingerprint} differs from the one in known_hosts")


def _fingerprint(value: str) -> str:
    return value.removeprefix("SHA256:").rstrip("=")


def _authenticate(transport: paramiko.Transport, settings: SftpSettings) -> None:
    if settings.key_file:
        try:
            transport.auth_publickey(settings.username, _private_key(settings))
            return
        except paramiko.AuthenticationException:
            if settings.password is None:
                raise
    transport.auth_password(settings.username, settings.password)


def _private_key(settings: SftpSettings) -> paramiko.PKey:
    try:
        passphrase = settings.key_passphrase.encode() if settings.key_passphrase else None
        return paramiko.PKey.from_path(Path(settings.key_file).expanduser(), passphrase)
    except FileNotFoundError as exc:
        raise SourceConfigError(f"download.key_file: no file {settings.key_file}") from exc
    except (paramiko.SSHException, ValueError, TypeError) as exc:
        raise SourceConfigError(f"download.key_file {settings.key_file} cannot be read: {exc}") from exc


def _listing(sftp: paramiko.SFTPClient, settings: SftpSettings) -> list[RemoteFile]:
    try:
        entries = sftp.listdir_attr(settings.directory)
    except FileNotFoundError as exc:
        raise FeedNotFound(f"no directory {settings.directory} on {settings.where}") from exc
    return [_remote(entry) for entry in entries if _is_file(entry)]


def _is_file(entry: paramiko.SFTPAttributes) -> bool:
    return entry.st_mode is None or stat.S_ISREG(entry.st_mode)


def _remote(entry: paramiko.SFTPAttributes) -> RemoteFile:
    mtime = dt.datetime.fromtimestamp(entry.st_mtime, dt.timezone.utc) if entry.st_mtime is not None else None
    return RemoteFile(entry.filename, entry.st_size, mtime)


def _download(sftp: paramiko.SFTPClient, settings: SftpSettings, remote: RemoteFile,
              request: FetchRequest) -> PayloadFile:
    path = local_path(request.workdir, remote.name)
    request.progress(f"downloading {remote.name} ({remote.size if remote.size is not None else '?'} bytes)")
    remote_path = f"{settings.directory.rstrip('/')}/{remote.name}"
    try:
        with open(path, "wb") as out:
            sftp.getfo(remote_path, out, max_concurrent_prefetch_requests=PREFETCH_REQUESTS)
    except FileNotFoundError as exc:  # listed a moment ago: replaced or removed while we worked
        raise SourceUnavailable(f"{remote.name} could not be read any more: {exc}") from exc
    return payload_file(path, remote)


@contextmanager
def translated(settings: SftpSettings) -> Iterator[None]:
    """paramiko's and the socket's errors, as pipeline errors."""
    try:
        yield
    except PipelineError:
        raise
    except paramiko.AuthenticationException as exc:
        raise SourceAuthError(f"{settings.where}: login as {settings.username!r} refused: {exc}") from exc
    except PermissionError as exc:
        raise SourceAuthError(f"{settings.where}: not allowed: {exc}") from exc
    except (paramiko.SSHException, EOFError, OSError) as exc:
        if getattr(exc, "errno", None) == errno.ENOENT:
            raise FeedNotFound(f"{settings.where}: {exc}") from exc
        raise SourceUnavailable(f"{settings.where}: {type(exc).__name__}: {exc or 'no answer'}") from exc


CONNECTOR = SftpConnector()
