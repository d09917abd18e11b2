"""FTP and FTPS downloads (download kinds ``ftp`` and ``ftps``), with ftplib.

Spec keys, with their defaults:

``host`` (required), ``port`` (21), ``username`` ("anonymous"), ``password`` ("")
``directory`` ("/")
``timeout`` (60): seconds for connecting and for every read or write on either connection
``verify_tls`` (true, ftps): check the server's certificate and name; ``ca_file`` (none): a
    PEM file of certificates to trust instead of the system's (a self-signed server's own)
plus the file-selection keys of :mod:`pipeline.connectors._files` (``pattern``,
``newest_first``, ``max_files``, ``only_new``, ``incremental_pattern``, ...).

The connector logs in (explicit TLS with a protected data channel for ftps), always uses
passive mode, lists the directory with MLSD (or NLST with SIZE and MDTM where the server has
no MLSD), and streams each chosen file to the work directory in binary mode, checking its size
against the listing afterwards.

Errors: refused, timed out, cut connections and 4xx replies (421 included) are
SourceUnavailable; 530 is SourceAuthError; a missing directory (550 to CWD) is FeedNotFound; a
file that vanishes between listing and download is SourceUnavailable; an untrusted certificate
and other 5xx replies (534 or 550 "TLS required", 500 unknown command...) are SourceConfigError.
"""

from __future__ import annotations

import datetime as dt
import ftplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, ClassVar

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

BLOCK_SIZE = 1 << 16
_UNSUPPORTED = ("500", "501", "502", "504")  # "command not understood / not implemented"


@dataclass(frozen=True)
class FtpSettings:
    """The connection part of a download spec."""

    host: str
    port: int = 21
    username: str = "anonymous"
    password: str = ""
    directory: str = "/"
    timeout: float = 60.0
    tls: bool = False
    verify_tls: bool = True
    ca_file: str | None = None

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "FtpSettings":
        kind = spec.get("kind", "ftp")
        if kind not in ("ftp", "ftps"):
            raise SourceConfigError(f"the FTP connector cannot fetch download kind {kind!r}")
        return cls(
            host=_spec.text(spec, "host"),
            port=_spec.integer(spec, "port", 21, minimum=1),
            username=_spec.text(spec, "username", "anonymous"),
            password=_spec.text(spec, "password", ""),
            directory=_spec.text(spec, "directory", "/"),
            timeout=_spec.number(spec, "timeout", 60.0),
            tls=kind == "ftps",
            verify_tls=_spec.flag(spec, "verify_tls", True),
            ca_file=_spec.text(spec, "ca_file", None),
        )

    @property
    def where(self) -> str:
        return f"{'ftps' if self.tls else 'ftp'}://{self.host}:{self.port}{self.directory}"


class FtpConnector:
    """Downloads the matching files of one directory of an FTP or FTPS server."""

    kind: ClassVar[str] = "ftp"

    def fetch(self, request: FetchRequest) -> Payload:
        settings = FtpSettings.from_spec(request.spec)
        rules = FileRules.from_spec(request.spec, request.since)
        with translated(settings), logged_in(settings) as ftp:
            _change_directory(ftp, settings)
            selection = select_files(_listing(ftp), rules, request.state)
            if not selection.chosen:
                return empty_payload(selection, rules, settings.where)
            files = [_download(ftp, remote, request) for remote in selection.chosen]
        return Payload(files=files, state=selection.state, complete=selection.complete)


class _ReusingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session.

    vsftpd (``require_ssl_reuse``), ProFTPD and FileZilla Server refuse data connections that
    do not; ftplib does not do it by itself.
    """

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            session = getattr(self.sock, "session", None)
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


@contextmanager
def logged_in(settings: FtpSettings) -> Iterator[ftplib.FTP]:
    """A logged-in client in passive mode (data channel protected for ftps), quit when the block ends.

    Errors are ftplib's and the socket's; wrap the block in ``translated`` for pipeline errors.
    """
    ftp = connect(settings)
    try:
        yield ftp
    except BaseException:
        ftp.close()  # no polite QUIT on a connection that just failed: it could wait a timeout
        raise
    hang_up(ftp)


def connect(settings: FtpSettings) -> ftplib.FTP:
    """A logged-in client in passive mode (data channel protected for ftps); ``hang_up`` ends it."""
    ftp = _client(settings)
    try:
        ftp.connect(settings.host, settings.port, timeout=settings.timeout)
        ftp.login(settings.username, settings.password)
        if settings.tls:
            ftp.prot_p()
        ftp.set_pasv(True)
    except BaseException:
        ftp.close()
        raise
    return ftp


def hang_up(ftp: ftplib.FTP) -> None:
    """QUIT politely if the server still listens, then close."""
    with suppress(OSError, EOFError, ftplib.Error):
        ftp.quit()
    ftp.close()


def _client(settings: FtpSettings) -> ftplib.FTP:
    if not settings.tls:
        return ftplib.FTP(timeout=settings.timeout)
    return _ReusingFTP_TLS(context=_tls_context(settings), timeout=settings.timeout)


def _tls_context(settings: FtpSettings) -> ssl.SSLContext:
    if not settings.verify_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=settings.ca_file)


def _change_directory(ftp: ftplib.FTP, settings: FtpSettings) -> None:
    try:
        ftp.cwd(settings.directory)
    except ftplib.error_perm as exc:
        if _code(exc) == "550":
            raise FeedNotFound(f"no directory {settings.directory} on {settings.where}: {exc}") from exc
        raise


def _listing(ftp: ftplib.FTP) -> list[RemoteFile]:
    """The plain files of the current directory, with size and modification time where known."""
    try:
        return [_from_facts(name, facts) for name, facts in ftp.mlsd() if _is_file(facts)]
    except ftplib.error_perm as exc:
        if _code(exc) not in _UNSUPPORTED:
            raise
    return _listing_without_mlsd(ftp)


def _is_file(facts: dict[str, str]) -> bool:
    return facts.get("type", "file").lower() == "file"


def _from_facts(name: str, facts: dict[str, str]) -> RemoteFile:
    size = facts.get("size")
    return RemoteFile(name, int(size) if size and size.isdigit() else None, _timeval(facts.get("modify")))


def _listing_without_mlsd(ftp: ftplib.FTP) -> list[RemoteFile]:
    names = _names(ftp)
    ftp.voidcmd("TYPE I")  # after NLST, which switches to ASCII, where many servers refuse SIZE
    files = (_described(ftp, name.rsplit("/", 1)[-1]) for name in names)
    return [f for f in files if f is not None]


def _names(ftp: ftplib.FTP) -> list[str]:
    try:
        return ftp.nlst()
    except ftplib.error_perm as exc:
        if _code(exc) == "550":  # several servers answer an empty directory so
            return []
        raise


def _described(ftp: ftplib.FTP, name: str) -> RemoteFile | None:
    """SIZE and MDTM of one name; None when the server says it is not a plain file."""
    try:
        size = ftp.size(name)
    except ftplib.error_perm as exc:
        if _code(exc) == "550":  # a directory, or a link to nothing
            return None
        size = None
    return RemoteFile(name, size, _modification_time(ftp, name))


def _modification_time(ftp: ftplib.FTP, name: str) -> dt.datetime | None:
    try:
        reply = ftp.voidcmd(f"MDTM {name}")
    except ftplib.error_perm:
        return None
    return _timeval(reply[4:].strip())


def _timeval(value: str | None) -> dt.datetime | None:
    """RFC 3659 time-val (``YYYYMMDDHHMMSS[.sss]``, UTC) as an aware datetime."""
    if not value or len(value) < 14 or not value[:14].isdigit():
        return None
    with suppress(ValueError):
        return dt.datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.timezone.utc)
    return None


def _download(ftp: ftplib.FTP, remote: RemoteFile, request: FetchRequest) -> PayloadFile:
    path = local_path(request.workdir, remote.name)
    request.progress(f"downloading {remote.name} ({remote.size if remote.size is not None else '?'} bytes)")
    try:
        with open(path, "wb") as out:
            ftp.retrbinary(f"RETR {remote.name}", out.write, blocksize=BLOCK_SIZE)
    except ftplib.error_perm as exc:
        if _code(exc) == "550":  # listed a moment ago: replaced or removed while we worked
            raise SourceUnavailable(f"{remote.name} could not be read any more: {exc}") from exc
        raise
    return payload_file(path, remote)


def _code(exc: ftplib.Error) -> str:
    return str(exc)[:3]


@contextmanager
def translated(settings: FtpSettings) -> Iterator[None]:
    """ftplib's, ssl's and the socket's errors, as pipeline errors."""
    try:
        yield
    except PipelineError:
        raise
    except ftplib.error_perm as exc:
        raise _permanent(exc, settings) from exc
    except ssl.SSLCertVerificationError as exc:
        raise SourceConfigError(
            f"{settings.where}: TLS certificate not trusted ({exc.verify_message}); "
            "name its CA in download.ca_file"
        ) from exc
    except TimeoutError as exc:
        raise SourceUnavailable(f"{settings.where}: timed out, no answer within {settings.timeout:g} s") from exc
    except (ftplib.error_temp, ftplib.error_reply, ftplib.error_proto, EOFError, OSError) as exc:
        raise SourceUnavailable(f"{settings.where}: {_describe(exc)}") from exc


def _permanent(exc: ftplib.error_perm, settings: FtpSettings) -> PipelineError:
    code = _code(exc)
    if code == "530":
        return SourceAuthError(f"{settings.where}: login as {settings.username!r} refused: {exc}")
    return SourceConfigError(f"{settings.where}: the server refused a command: {exc}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "the server closed the connection"
    return f"{type(exc).__name__}: {exc}"


CONNECTOR = FtpConnector()
