"""``ftp``: photo files on an FTP, FTPS or SFTP server, named by a pattern; fetched and stored by us.

Spec keys (the source's ``[images]`` table), with their defaults:

``protocol`` ("ftp")
    "ftp", "ftps" (explicit TLS, data channel protected) or "sftp".
``pattern`` (required)
    the name of photo ``n`` of a listing, e.g. ``"{ListingId}_{n}.jpg"``: ``{field}`` placeholders
    take the listing's mapped record (RESO names: ``{ListingId}``, ``{ListingKey}``, ...; and
    ``{SourceId}``), ``{n}`` is the 1-based order and ``{n0}`` the 0-based one. Format specs work
    (``"{ListingId}-{n:02d}.jpg"``) and so do folders (``"{ListingKey}/{n}.jpg"``).
``directory`` ("/")
    the folder the names are relative to.
``max_photos`` (50)
    at most this many photos per listing.
``max_bytes`` (20 MB)
    a larger file is a failed photo.
``connections`` (8)
    at most this many logged-in connections at once (never more than the job's threads).
the connection keys of the ``ftp``/``ftps`` and ``sftp`` download kinds, read by their connectors:
    ``host`` (required), ``port`` (21 / 22), ``username``, ``password``, ``timeout`` (60 s);
    ftps: ``verify_tls`` (true), ``ca_file``; sftp: ``key_file``, ``key_passphrase``, and the
    host key check ``host_key_sha256``, ``known_hosts`` or ``insecure_accept_any_host_key``.

Which files: photos 1..PhotosCount, where a missing file (550, ENOENT) is a failed photo, tried
again on the next run. A listing whose PhotosCount is 0 or unknown (feeds without the column) is
probed: n = 1, 2, ... until the first missing file, at most ``max_photos``.

The job's threads share at most ``connections`` logged-in connections (``Logins``): a thread
borrows one for a listing's files and gives it back before it checks and uploads them, so the
connections stay busy while other threads upload. A server that caps the logins of one user
and refuses a further one while others are open is not an error: the job goes on over those
(see pipeline.connectors.logins). A connection that drops (an idle timeout, a
server restart) is replaced, once per listing. Failures of the whole source are the
connectors' pipeline errors: SourceUnavailable (refused, timed out, 4xx replies),
SourceAuthError (a refused login or host key), SourceConfigError (a bad spec or TLS setup).
"""

from __future__ import annotations

import ftplib
import posixpath
import ssl
import string
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.connectors import _spec
from pipeline.connectors import ftp as ftp_connector
from pipeline.connectors import sftp as sftp_connector
from pipeline.connectors.logins import Logins
from pipeline.errors import SourceConfigError, SourceUnavailable
from pipeline.images import ListingPhotos, Photo

PROTOCOLS = ("ftp", "ftps", "sftp")
CONNECTIONS = 8
MAX_PHOTOS = 50
MAX_BYTES = 20 * 1024 * 1024
BLOCK_SIZE = 1 << 16


class TooLarge(Exception):
    """A photo file over ``max_bytes``: the photo fails, the source does not."""


class MissingValue(Exception):
    """The pattern names a field this listing has no value for."""


# -- naming ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PhotoNaming:
    """Where photo ``n`` of a listing is, and how many to look for."""

    pattern: str
    directory: str = "/"
    max_photos: int = MAX_PHOTOS
    max_bytes: int = MAX_BYTES

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "PhotoNaming":
        with images_keys():
            naming = cls(
                pattern=_spec.text(spec, "pattern"),
                directory=_spec.text(spec, "directory", "/"),
                max_photos=_spec.integer(spec, "max_photos", MAX_PHOTOS, minimum=1),
                max_bytes=_spec.integer(spec, "max_bytes", MAX_BYTES, minimum=1),
            )
        _check_pattern(naming.pattern)
        return naming

    def path(self, listing: ListingPhotos, n: int) -> str:
        """The remote path of photo ``n`` (1-based) of ``listing``."""
        return posixpath.join(self.directory, photo_name(self.pattern, listing, n))


def photo_name(pattern: str, listing: ListingPhotos, n: int) -> str:
    """``pattern`` filled in for photo ``n`` (1-based) of ``listing`` (see the module docstring).

    A placeholder the listing's records do not carry at all is a SourceConfigError; one this
    listing has no value for raises ``MissingValue`` (the listing's photos fail, not the source).
    """
    values = {k: v for k, v in listing.record.items() if v is not None and not isinstance(v, (dict, list))}
    values.update(SourceId=listing.source_id, ListingKey=listing.listing_key)
    if listing.listing_id:
        values["ListingId"] = listing.listing_id
    try:
        return pattern.format_map(_Fields(values, set(listing.record), n))
    except (ValueError, TypeError, IndexError, AttributeError) as exc:  # a format spec the value cannot take
        reason = f"images.pattern {pattern!r} cannot name photo {n} of {listing.listing_key}: {exc}"
        raise SourceConfigError(reason) from exc


class _Fields(dict):
    def __init__(self, values: dict[str, Any], known: set[str], n: int):
        super().__init__(values, n=n, n0=n - 1)
        self.known = known

    def __missing__(self, key: str) -> Any:
        if key in self.known:
            raise MissingValue(key)
        raise SourceConfigError(f"images.pattern names {{{key}}}, which the listing records do not have")


def _check_pattern(pattern: str) -> None:
    try:
        names = {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(pattern) if name}
    except ValueError as exc:
        raise SourceConfigError(f"images.pattern {pattern!r} is not a valid pattern: {exc}") from None
    if not names & {"n", "n0"}:
        raise SourceConfigError(f"images.pattern {pattern!r} must hold {{n}} or {{n0}}, the photo's number")


@contextmanager
def images_keys() -> Iterator[None]:
    """Spec errors from the connectors' readers name the ``[images]`` table, where the key is."""
    try:
        yield
    except SourceConfigError as exc:
        raise SourceConfigError(str(exc).replace("download.", "images.")) from exc


# -- the servers ----------------------------------------------------------------------------------

class RemoteFiles(Protocol):
    """One connection to a file server, as the photos need it."""

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def read(self, path: str, max_bytes: int) -> bytes | None:
        """The file's bytes; None when there is no such file; TooLarge past ``max_bytes``."""
        ...


class FtpFiles:
    """Files over FTP or FTPS, through the ftp connector's login."""

    def __init__(self, settings: ftp_connector.FtpSettings):
        self.settings = settings
        self.client: ftplib.FTP | None = None
        self._stack = ExitStack()

    def connect(self) -> None:
        with ftp_connector.translated(self.settings):
            self.client = self._stack.enter_context(ftp_connector.logged_in(self.settings))
            self.client.voidcmd("TYPE I")  # once: retrbinary would send it before every file

    def close(self) -> None:
        self._stack.close()
        self.client = None

    def read(self, path: str, max_bytes: int) -> bytes | None:
        with ftp_connector.translated(self.settings):
            try:
                return self._retrieve(path, max_bytes)
            except ftplib.error_perm as exc:
                if str(exc)[:3] == "550":
                    return None
                raise
            except TooLarge:
                self._reconnect()  # the transfer was cut: the control connection's replies are out of step
                raise

    def _retrieve(self, path: str, max_bytes: int) -> bytes:
        """RETR in binary mode (set at login): PASV, the data connection, 226."""
        data = bytearray()
        with self.client.transfercmd(f"RETR {path}") as conn:
            while chunk := conn.recv(BLOCK_SIZE):
                data.extend(chunk)
                if len(data) > max_bytes:
                    raise TooLarge(f"{path}: larger than {max_bytes:,} bytes")
            if isinstance(conn, ssl.SSLSocket):
                conn.unwrap()
        self.client.voidresp()
        return bytes(data)

    def _reconnect(self) -> None:
        self.close()
        self.connect()


class SftpFiles:
    """Files over SFTP, through the sftp connector's login and host key check."""

    def __init__(self, settings: sftp_connector.SftpSettings):
        self.settings = settings
        self.client = None
        self._stack = ExitStack()

    def connect(self) -> None:
        with sftp_connector.translated(self.settings):
            self.client = self._stack.enter_context(sftp_connector.logged_in(self.settings))

    def close(self) -> None:
        self._stack.close()
        self.client = None

    def read(self, path: str, max_bytes: int) -> bytes | None:
        with sftp_connector.translated(self.settings):
            try:
                with self.client.open(path, "rb") as remote:
                    size = remote.stat().st_size or 0
                    if size > max_bytes:
                        raise TooLarge(f"{path}: {size:,} bytes, more than {max_bytes:,}")
                    remote.prefetch(size)
                    return remote.read()
            except FileNotFoundError:
                return None


def remote_files(spec: dict[str, Any]) -> FtpFiles | SftpFiles:
    """The (not yet connected) file server an ``ftp`` images spec names."""
    protocol = spec.get("protocol", "ftp")
    if protocol not in PROTOCOLS:
        raise SourceConfigError(f"images.protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    with images_keys():
        if protocol == "sftp":
            return SftpFiles(sftp_connector.SftpSettings.from_spec(spec))
        return FtpFiles(ftp_connector.FtpSettings.from_spec({**spec, "kind": protocol}))


# -- the strategy ---------------------------------------------------------------------------------

class FtpStrategy:
    name = "ftp"
    stores = True
    shared = True  # one PatternPhotos for the job: its logins are lent to the threads

    @contextmanager
    def open(self, spec: dict[str, Any], environ) -> Iterator["PatternPhotos"]:
        naming = PhotoNaming.from_spec(spec)
        with images_keys():
            limit = _spec.integer(spec, "connections", CONNECTIONS, minimum=1)
        logins = Logins(lambda: connected(remote_files(spec)), lambda files: files.close(), limit,
                        remote_files(spec).settings.where)
        try:
            with logins.connection():  # the first login: a refusal fails the job once
                pass
            yield PatternPhotos(logins, naming)
        finally:
            logins.close()


def connected(files: RemoteFiles) -> RemoteFiles:
    files.connect()
    return files


class PatternPhotos:
    """The job's PhotoSource: the logins its threads share, and the naming pattern."""

    def __init__(self, logins: Logins[RemoteFiles], naming: PhotoNaming):
        self.logins = logins
        self.naming = naming

    def photos(self, listing: ListingPhotos) -> list[Photo]:
        try:
            with self.logins.connection() as files:
                return self._photos(files, listing)
        except SourceUnavailable:  # a dropped connection is replaced, once; a dead server fails the source
            with self.logins.connection() as files:
                return self._photos(files, listing)

    def _photos(self, files: RemoteFiles, listing: ListingPhotos) -> list[Photo]:
        try:
            if listing.photos_count > 0:
                count = min(listing.photos_count, self.naming.max_photos)
                return [self._counted(files, listing, n) for n in range(1, count + 1)]
            return list(self._probed(files, listing))
        except MissingValue as missing:
            return [Photo(order=1, error=f"{listing.listing_key}: no {missing} to name its photo files")]

    def _counted(self, files: RemoteFiles, listing: ListingPhotos, n: int) -> Photo:
        path = self.naming.path(listing, n)
        photo = self._read(files, path, n)
        return photo if photo is not None else Photo(order=n, error=f"{listing.listing_key} #{n}: no file {path}")

    def _probed(self, files: RemoteFiles, listing: ListingPhotos) -> Iterator[Photo]:
        """Without a PhotosCount: photos 1, 2, ... up to the first missing file."""
        for n in range(1, self.naming.max_photos + 1):
            photo = self._read(files, self.naming.path(listing, n), n)
            if photo is None:
                return
            yield photo

    def _read(self, files: RemoteFiles, path: str, n: int) -> Photo | None:
        try:
            data = files.read(path, self.naming.max_bytes)
        except TooLarge as exc:
            return Photo(order=n, error=str(exc))
        return None if data is None else Photo(order=n, data=data)


STRATEGY = FtpStrategy()
