"""Where a photo archive is migrated from: a folder, an FTP server, or an HTTP server.

``open_archive(url)`` picks the kind from the URL:

* ``/path``, ``./path`` or ``file:///path`` — a folder tree, walked in name order;
* ``ftp://user:password@host:port/path`` — an FTP server, walked with MLSD (NLST where the
  server has none); the worker threads share at most ``connections`` logins (a server that
  refuses more is read over those it allowed: pipeline.connectors.logins);
  ``ftps://...`` the same over explicit TLS (AUTH TLS, data channel protected), the server's
  certificate checked (``ca_file``, or ``verify_tls=False`` for a test server);
* ``sftp://user[:password]@host:port/path`` — an SSH server, walked with ``listdir_attr``; the
  host key is checked (``host_key_sha256``, ``known_hosts``, else ``~/.ssh/known_hosts``) and
  the user logs in with a password or ``key_file``; SSH sessions shared as FTP logins are;
* ``http(s)://host/path/`` — an HTTP server. If the URL answers with HTML, it is a directory
  index (what ``python -m http.server``, nginx ``autoindex`` and Apache produce): links below it
  are followed, those ending in ``/`` as folders, recursively; sort links (``?C=M``), parents and
  other hosts are ignored. Anything else (``text/plain``) is a manifest: one path per line,
  relative to the manifest's folder (or an absolute URL), blank lines and ``#`` comments
  skipped. Either way the listing streams: only one folder's links are held at a time.

Listings are generators of ``ArchiveFile`` (relative ``/``-separated path, size when known),
so millions of files never sit in memory. ``read(path, sink)`` streams one file into a
writable sink. Failures are pipeline errors: ``SourceUnavailable`` (worth retrying),
``FeedNotFound``, ``SourceAuthError``, ``SourceConfigError``. Their messages never repeat the
path, so that the migration report can group failures by reason.
"""

from __future__ import annotations

import ftplib
import os
import posixpath
import ssl
import stat
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from pipeline.connectors.logins import Logins
from pipeline.errors import FeedNotFound, PipelineError, SourceAuthError, SourceConfigError, SourceUnavailable

CHUNK = 1 << 16
CONNECTIONS = 16  # FTP/SFTP logins at once, at most (the migration's default workers)


@dataclass(frozen=True)
class ArchiveFile:
    path: str               # relative to the archive root, '/'-separated, never starting with '/'
    size: int | None = None  # when the listing tells


class Archive(Protocol):
    """A source of files. ``walk`` runs in one thread; ``read`` in many at once."""

    url: str  # without any password: this is what the manifest records

    def walk(self) -> Iterator[ArchiveFile]: ...
    def read(self, path: str, sink: BinaryIO) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Security:
    """How to trust an FTPS or SFTP server, and the SSH key to log in with."""

    ca_file: str | None = None          # ftps: a CA bundle for the server's certificate
    verify_tls: bool = True             # ftps: False accepts any certificate (tests only)
    host_key_sha256: str | None = None  # sftp: the pinned host key fingerprint (SHA256:...)
    known_hosts: str | None = None      # sftp: an OpenSSH known_hosts file
    insecure_accept_any_host_key: bool = False
    key_file: str | None = None         # sftp: a private key instead of a password
    key_passphrase: str | None = None


def open_archive(url: str, password: str | None = None, timeout: float = 60.0,
                 security: Security = Security(), connections: int = CONNECTIONS) -> Archive:
    """The archive at ``url``; ``password`` overrides one written in the URL; an FTP or SFTP
    server is read over at most ``connections`` logins at once (fewer if it refuses more)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("", "file"):
        return FolderArchive(_folder_path(url))
    if scheme in ("ftp", "ftps"):
        return FtpArchive(url, password, timeout, security, connections)
    if scheme == "sftp":
        return SftpArchive(url, password, timeout, security, connections)
    if scheme in ("http", "https"):
        return HttpArchive(url, password, timeout)
    raise SourceConfigError(f"cannot migrate from {scheme}:// (use a folder, file://, ftp://, ftps://, sftp:// "
                            "or http(s)://)")


def redact(url: str) -> str:
    """``url`` without the password of its user part."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _folder_path(url: str) -> Path:
    if url.startswith("file://"):
        parts = urlsplit(url)
        return Path(unquote(parts.netloc + parts.path))
    return Path(url)


# -- folder -----------------------------------------------------------------------------------

class FolderArchive:
    """Files under a local folder; symbolic links to folders are not followed (no cycles)."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FeedNotFound(f"no folder {self.root}")
        self.url = self.root.as_uri()

    def walk(self) -> Iterator[ArchiveFile]:
        yield from self._walk(self.root, "")

    def _walk(self, folder: Path, prefix: str) -> Iterator[ArchiveFile]:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as exc:
            raise SourceUnavailable(f"cannot list folder {folder}: {exc.strerror}") from exc
        for entry in entries:
            relative = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), relative + "/")
            elif entry.is_file():
                yield ArchiveFile(relative, entry.stat().st_size)

    def read(self, path: str, sink: BinaryIO) -> None:
        try:
            with open(self.root / path, "rb") as source:
                for chunk in iter(lambda: source.read(CHUNK), b""):
                    sink.write(chunk)
        except FileNotFoundError as exc:
            raise FeedNotFound("the file is gone from the folder") from exc
        except PermissionError as exc:
            raise SourceAuthError("no permission to read the file") from exc
        except OSError as exc:
            raise SourceUnavailable(f"cannot read the file: {exc.strerror}") from exc

    def close(self) -> None:
        pass


# -- FTP --------------------------------------------------------------------------------------

class FtpArchive:
    """Files below a folder of an FTP or FTPS server (passive mode, binary transfers, UTF-8 names),
    read over at most ``connections`` logins shared by the threads; the walk borrows one too."""

    def __init__(self, url: str, password: str | None, timeout: float, security: Security = Security(),
                 connections: int = CONNECTIONS):
        from pipeline.connectors.ftp import FtpSettings

        parts = urlsplit(url)
        if not parts.hostname:
            raise SourceConfigError(f"no host in {redact(url)!r}")
        self.settings = FtpSettings(
            host=parts.hostname, port=parts.port or 21, username=unquote(parts.username or "anonymous"),
            password=password if password is not None else unquote(parts.password or ""), timeout=timeout,
            tls=parts.scheme.lower() == "ftps", verify_tls=security.verify_tls, ca_file=security.ca_file)
        self.root = unquote(parts.path or "/").rstrip("/") or "/"
        self.url = redact(url)
        self._logins = Logins(self._login, _quit, connections, self.url, drop=ftplib.FTP.close)

    def walk(self) -> Iterator[ArchiveFile]:
        with self._logins.connection() as ftp:
            yield from self._walk(ftp, self.root, "")

    def _walk(self, ftp: ftplib.FTP, folder: str, prefix: str) -> Iterator[ArchiveFile]:
        for name, is_dir, size in self._entries(ftp, folder):
            if is_dir:
                yield from self._walk(ftp, posixpath.join(folder, name), f"{prefix}{name}/")
            else:
                yield ArchiveFile(prefix + name, size)

    def _entries(self, ftp: ftplib.FTP, folder: str) -> list[tuple[str, bool, int | None]]:
        """(name, is folder, size) of one folder, sorted; MLSD, or NLST where there is none."""
        with _ftp_errors("list a folder"):
            try:
                facts = list(ftp.mlsd(folder, facts=["type", "size"]))
            except ftplib.error_perm as exc:
                if not str(exc).startswith(("500", "501", "502")):
                    raise
                return self._entries_without_mlsd(ftp, folder)
        entries = [(name, f.get("type") == "dir", _int(f.get("size"))) for name, f in facts
                   if f.get("type") in ("dir", "file")]
        return sorted(entries)

    def _entries_without_mlsd(self, ftp: ftplib.FTP, folder: str) -> list[tuple[str, bool, int | None]]:
        ftp.voidcmd("TYPE I")  # servers refuse SIZE in ASCII mode
        entries = []
        for full in sorted(ftp.nlst(folder)):
            name = posixpath.basename(full.rstrip("/"))
            if name not in (".", ".."):
                entries.append(self._probe_entry(ftp, posixpath.join(folder, name), name))
        return entries

    def _probe_entry(self, ftp: ftplib.FTP, path: str, name: str) -> tuple[str, bool, int | None]:
        """(name, is folder, size) of one NLST entry: SIZE answers for files, CWD for folders."""
        try:
            return name, False, ftp.size(path)
        except ftplib.error_perm:
            pass
        try:
            ftp.cwd(path)
        except ftplib.error_perm:
            return name, False, None  # neither: a file whose size the server will not tell
        ftp.cwd("/")
        return name, True, None

    def read(self, path: str, sink: BinaryIO) -> None:
        """A dropped or failed connection is not lent again (the control connection may be out of step)."""
        with self._logins.connection() as ftp, _ftp_errors("download"):
            ftp.retrbinary(f"RETR {posixpath.join(self.root, path)}", sink.write, blocksize=CHUNK)

    def close(self) -> None:
        self._logins.close()

    def _login(self) -> ftplib.FTP:
        from pipeline.connectors.ftp import connect

        with _ftp_errors("log in"):
            return connect(self.settings)


class _ftp_errors:
    """Translates ftplib's errors to pipeline errors, for one kind of operation."""

    def __init__(self, doing: str):
        self.doing = doing

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, PipelineError):
            return False
        reply = str(exc).strip()
        if isinstance(exc, ssl.SSLCertVerificationError):
            raise SourceAuthError(f"FTPS: the server's certificate is not trusted: {exc.verify_message}") from exc
        if isinstance(exc, ftplib.error_perm):
            if reply.startswith("530"):
                raise SourceAuthError(f"FTP refused the login: {reply}") from exc
            if reply.startswith("550"):
                raise FeedNotFound(f"FTP could not {self.doing}: {reply}") from exc
            raise SourceConfigError(f"FTP could not {self.doing}: {reply}") from exc
        if isinstance(exc, (ftplib.Error, OSError, EOFError)):
            raise SourceUnavailable(f"FTP could not {self.doing}: {exc.__class__.__name__}: {reply}") from exc
        return False


def _quit(ftp: ftplib.FTP) -> None:
    from pipeline.connectors.ftp import hang_up

    hang_up(ftp)


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


# -- SFTP -------------------------------------------------------------------------------------

class SftpArchive:
    """Files below a folder of an SSH server, over SFTP (paramiko, through the sftp connector's
    login and host key check)."""

    def __init__(self, url: str, password: str | None, timeout: float, security: Security = Security(),
                 connections: int = CONNECTIONS):
        from pipeline.connectors.sftp import SftpSettings

        parts = urlsplit(url)
        if not parts.hostname or not parts.username:
            raise SourceConfigError(f"sftp:// needs a user and a host: sftp://USER@HOST[:PORT]/PATH, got {redact(url)!r}")
        secret = password if password is not None else (unquote(parts.password) if parts.password else None)
        if secret is None and security.key_file is None:
            raise SourceConfigError("sftp:// needs a password (in the URL or --source-password-env) or --key-file")
        self.settings = SftpSettings(
            host=parts.hostname, username=unquote(parts.username), port=parts.port or 22, password=secret,
            key_file=security.key_file, key_passphrase=security.key_passphrase, timeout=timeout,
            host_key_sha256=security.host_key_sha256, known_hosts=security.known_hosts,
            insecure_accept_any_host_key=security.insecure_accept_any_host_key)
        self.root = unquote(parts.path or "/").rstrip("/") or "/"
        self.url = redact(url)
        self._logins = Logins(self._login, lambda session: session[1].close(), connections, self.url)

    def walk(self) -> Iterator[ArchiveFile]:
        from pipeline.connectors import sftp as connector

        with self._logins.connection() as (client, _), connector.translated(self.settings):
            yield from self._walk(client, self.root, "")

    def _walk(self, client, folder: str, prefix: str) -> Iterator[ArchiveFile]:
        for entry in sorted(client.listdir_attr(folder), key=lambda e: e.filename):
            if stat.S_ISDIR(entry.st_mode or 0):
                yield from self._walk(client, posixpath.join(folder, entry.filename), f"{prefix}{entry.filename}/")
            elif stat.S_ISREG(entry.st_mode or 0):
                yield ArchiveFile(prefix + entry.filename, entry.st_size)

    def read(self, path: str, sink: BinaryIO) -> None:
        from pipeline.connectors import sftp as connector

        with self._logins.connection() as (client, _), connector.translated(self.settings), \
                client.open(posixpath.join(self.root, path), "rb") as remote:
            remote.prefetch()
            for chunk in iter(lambda: remote.read(CHUNK), b""):
                sink.write(chunk)

    def close(self) -> None:
        self._logins.close()

    def _login(self) -> tuple:
        """(the SFTP client, the stack that logs it out)."""
        from pipeline.connectors import sftp as connector

        stack = ExitStack()
        with connector.translated(self.settings):
            return stack.enter_context(connector.logged_in(self.settings)), stack


# -- HTTP -------------------------------------------------------------------------------------

class HttpArchive:
    """Files linked from an HTTP directory index (recursively), or listed in a manifest."""

    def __init__(self, url: str, password: str | None, timeout: float):
        import requests

        parts = urlsplit(url)
        if not parts.hostname:
            raise SourceConfigError(f"no host in {redact(url)!r}")
        user = unquote(parts.username) if parts.username else None
        secret = password if password is not None else unquote(parts.password or "")
        self.auth = (user, secret) if user else None
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.start = urlunsplit((parts.scheme, host, parts.path or "/", parts.query, ""))
        self.base = self.start if self.start.endswith("/") else self.start.rsplit("/", 1)[0] + "/"
        self.url = redact(url)
        self.timeout = timeout
        self._requests = requests
        self._local = threading.local()

    def walk(self) -> Iterator[ArchiveFile]:
        with self._get(self.start, "list the archive") as reply:
            kind = reply.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind not in ("text/html", "application/xhtml+xml"):
                yield from self._manifest(reply)
                return
            page, final = reply.text, reply.url  # an index may redirect /photos to /photos/
        self.base = final if final.endswith("/") else final + "/"
        yield from self._index(self.base, page)

    def _index(self, folder: str, page: str) -> Iterator[ArchiveFile]:
        for link in sorted(_links_below(folder, page)):
            if link.endswith("/"):
                with self._get(link, "list a folder") as reply:
                    sub_page = reply.text
                yield from self._index(link, sub_page)
            else:
                yield ArchiveFile(unquote(link[len(self.base):]))

    def _manifest(self, reply) -> Iterator[ArchiveFile]:
        for number, raw in enumerate(reply.iter_lines(decode_unicode=False), 1):
            line = raw.decode("utf-8", "replace").strip()
            if line and not line.startswith("#"):
                yield ArchiveFile(self._manifest_path(line, number))

    def _manifest_path(self, line: str, number: int) -> str:
        """A manifest line as a path relative to the manifest's folder."""
        if not line.startswith(("http://", "https://")):
            return line.lstrip("/")
        url = urlunsplit(urlsplit(line)._replace(query="", fragment=""))
        if not url.startswith(self.base):
            raise SourceConfigError(f"manifest line {number}: {line!r} is not below {self.base}")
        return unquote(url[len(self.base):])

    def read(self, path: str, sink: BinaryIO) -> None:
        with self._get(self.base + quote(path), "download") as reply:
            for chunk in reply.iter_content(CHUNK):
                sink.write(chunk)

    def close(self) -> None:
        pass

    def _get(self, url: str, doing: str):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._requests.Session()
        try:
            reply = session.get(url, auth=self.auth, timeout=self.timeout, stream=True)
        except self._requests.RequestException as exc:
            raise SourceUnavailable(f"HTTP could not {doing}: {exc.__class__.__name__}") from exc
        _check_status(reply, doing)
        return reply


def _check_status(reply, doing: str) -> None:
    status = reply.status_code
    if status < 300:
        return
    reply.close()
    message = f"HTTP {status} {reply.reason} when trying to {doing}"
    if status in (401, 403):
        raise SourceAuthError(message)
    if status in (404, 410):
        raise FeedNotFound(message)
    if status >= 500 or status in (408, 429):
        raise SourceUnavailable(message)
    raise SourceConfigError(message)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def _links_below(folder: str, page: str) -> set[str]:
    """Absolute URLs of the links in ``page`` that lie strictly below ``folder``."""
    parser = _Links()
    parser.feed(page)
    links = set()
    for href in parser.hrefs:
        url = urljoin(folder, href)
        parts = urlsplit(url)
        if parts.query or parts.scheme not in ("http", "https"):
            continue  # sort links (?C=N;O=D) and mailto: and the like
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        if url.startswith(folder) and len(url) > len(folder):
            links.add(url)
    return links
