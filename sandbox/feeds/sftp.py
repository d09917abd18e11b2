"""An MLS that drops a gzip-compressed CSV export on an SFTP server (asyncssh).

The dialect, as a newer vendor writes it: UTF-8, commas, every field quoted, a header with
spaced names, status and class in the vendor's words, prices with cents, street parts in
separate columns, times as ISO 8601 with the local offset (America/Chicago), no photo data::

    "Property ID","MLS Number","Listing Status","Property Class","Style","Asking Price",...
    "482910375518","AUS010000007","UNDER CONTRACT","Residential","Condominium","389000.00",...

One export per day, ``outgoing/listings_YYYY-MM-DD.csv.gz``. Log in with a password or the
client key the server writes to ``root/ssh/client_key``.

Photos are files in ``photos/``, named ``{MLS Number}_{n}.jpg`` for n in 1..PhotosCount and
rendered by sandbox.photos at the listing's ``PhotoVersion``; the export says nothing about them
(no count, no change time), so a reader finds them by trying n = 1, 2, ... until one is missing.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import gzip
import hmac
import io
import threading
from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from sandbox.feeds import Running
from sandbox.feeds._common import atomic_file, business_day, saved_port
from sandbox.feeds.ftp import PHOTO_DIRECTORY, PHOTO_PATTERN, PhotoFiles, listing_photos

TIMEZONE = "America/Chicago"
DIRECTORY = "outgoing"
PATTERN = "listings_*.csv.gz"

STATUS_WORDS = {
    "Active": "ACTIVE", "Active Under Contract": "UNDER CONTRACT", "Pending": "PENDING", "Closed": "SOLD",
    "Coming Soon": "COMING SOON", "Withdrawn": "WITHDRAWN", "Expired": "EXPIRED", "Canceled": "CANCELLED",
    "Hold": "TEMP OFF MARKET",
}
CLASS_WORDS = {
    "Residential": "Residential", "Residential Lease": "Rental", "Land": "Vacant Land",
    "Commercial Sale": "Commercial", "Residential Income": "Multi-Family", "Farm": "Farm & Ranch",
    "Manufactured In Park": "Mobile Home",
}
# column -> RESO name; the order is the file's.
COLUMNS = {
    "Property ID": "ListingKey", "MLS Number": "ListingId", "Listing Status": "StandardStatus",
    "Property Class": "PropertyType", "Style": "PropertySubType", "Asking Price": "ListPrice",
    "Street #": "StreetNumber", "Street Name": "StreetName", "Unit #": "UnitNumber", "City": "City",
    "State": "StateOrProvince", "Postal Code": "PostalCode", "County": "CountyOrParish",
    "Bedrooms": "BedroomsTotal", "Full Baths": "BathroomsTotalInteger", "Living Area (sqft)": "LivingArea",
    "Lot (acres)": "LotSizeAcres", "Year Built": "YearBuilt", "Latitude": "Latitude", "Longitude": "Longitude",
    "Listing Agent": "ListAgentFullName", "Listing Office": "ListOfficeName", "Public Remarks": "PublicRemarks",
    "Last Updated": "ModificationTimestamp",
}
INTEGERS = {"BedroomsTotal", "BathroomsTotalInteger", "YearBuilt"}
DECIMALS = {"ListPrice": "0.01", "LivingArea": "1", "LotSizeAcres": "0.01"}
FLOATS = {"Latitude", "Longitude"}


class SftpFeed:
    """The SFTP MLS: password or public-key login, a chrooted view of ``root/sftp``;
    ``max_sessions=N`` lets N connections in at once and disconnects the next ("too many
    connections"), as OpenSSH does past MaxStartups."""

    kind = "sftp"

    def __init__(self, *, username: str = "mlsfeed", password: str = "sftp-secret-2", max_sessions: int | None = None):
        self.username, self.password = username, password
        self.max_sessions = max_sessions

    def publish(self, listings: Iterable[dict], root: Path, *, day: dt.date | None = None,
                mtime: dt.datetime | None = None) -> Path:
        """Write the day's export (today in the MLS's time zone unless ``day`` is given)."""
        day = day or business_day(TIMEZONE)
        listings = list(listings)
        PhotoFiles(Path(root) / "sftp" / PHOTO_DIRECTORY, Path(root) / ".sftp-photos.json").publish(listings)
        path = Path(root) / "sftp" / DIRECTORY / f"listings_{day:%Y-%m-%d}.csv.gz"
        with atomic_file(path, mtime) as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as packed:
            text = io.TextIOWrapper(packed, encoding="utf-8", newline="")
            writer = csv.writer(text, quoting=csv.QUOTE_ALL)
            writer.writerow(COLUMNS)
            writer.writerows(_row(listing) for listing in listings)
            text.flush()
            text.detach()
        return path

    def start(self, root: Path) -> Running:
        """asyncssh on 127.0.0.1, a free port, its event loop in a background thread."""
        keys = _Keys.create(Path(root) / "ssh")
        (Path(root) / "sftp" / DIRECTORY).mkdir(parents=True, exist_ok=True)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="sandbox-sftp", daemon=True)
        thread.start()
        connections: set = set()
        sessions = {"cap": self.max_sessions, "most": 0, "refused": 0}
        listening = asyncio.run_coroutine_threadsafe(
            self._listen(keys, Path(root) / "sftp", connections, sessions, saved_port(root, "sftp")), loop)
        server = listening.result(timeout=10)
        port = server.sockets[0].getsockname()[1]
        keys.write_known_hosts(port)
        details = {"host": "127.0.0.1", "port": port, "username": self.username, "password": self.password,
                   "key_file": str(keys.client_path), "known_hosts": str(keys.known_hosts_path),
                   "host_key_sha256": keys.fingerprint, "directory": Path(root) / "sftp" / DIRECTORY,
                   "sessions": sessions}
        return Running(f"sftp://127.0.0.1:{port}", _stopper(server, connections, loop, thread), details)

    async def _listen(self, keys: "_Keys", directory: Path, connections: set, sessions: dict, port: int = 0):
        import asyncssh  # a test dependency: imported only when a server starts

        users = {self.username: self.password}
        client_key = keys.client.public_data

        def sftp_factory(chan):
            return asyncssh.SFTPServer(chan, chroot=str(directory).encode())

        return await asyncssh.listen(
            "127.0.0.1", port, server_host_keys=[keys.host], sftp_factory=sftp_factory,
            server_factory=lambda: _server_class()(users, client_key, connections, sessions), allow_scp=False,
        )

    def source(self, running: Running, source_id: str) -> dict:
        """The ``[[source]]`` table for this feed (password login, pinned host key)."""
        download = {
            "kind": "sftp", "host": running.details["host"], "port": running.details["port"],
            "username": self.username, "password": self.password, "directory": f"/{DIRECTORY}",
            "pattern": PATTERN, "newest_first": True, "max_files": 1,
            "host_key_sha256": running.details["host_key_sha256"],
        }
        images = {"strategy": "ftp", "protocol": "sftp", "directory": f"/{PHOTO_DIRECTORY}", "pattern": PHOTO_PATTERN,
                  **{key: download[key] for key in ("host", "port", "username", "password", "host_key_sha256")}}
        return {
            "id": source_id, "name": f"Sandbox SFTP MLS ({source_id})", "timezone": TIMEZONE,
            "earliest_download": "03:00", "download": download,
            "parse": {"format": "delimited", "delimiter": ",", "encoding": "utf-8"},
            "fields": {reso: column for column, reso in COLUMNS.items()},
            "values": {"StandardStatus": _inverse(STATUS_WORDS), "PropertyType": _inverse(CLASS_WORDS)},
            "images": images,
        }

    def expected(self, listing: dict) -> dict:
        """The RESO fields this dialect carries, as the pipeline must store them."""
        return {reso: _expected_value(reso, text) for reso, text in zip(COLUMNS.values(), _row(listing))}

    def expected_photos(self, listing: dict) -> list[dict]:
        """The listing's photos as the pipeline must store them (``corrupt`` ones rejected)."""
        return listing_photos(listing)


def _row(listing: dict) -> list[str]:
    return [_render(reso, listing.get(reso)) for reso in COLUMNS.values()]


def _render(reso: str, value: Any) -> str:
    if value is None:
        return ""
    if reso == "StandardStatus":
        return STATUS_WORDS[value]
    if reso == "PropertyType":
        return CLASS_WORDS[value]
    if reso == "ModificationTimestamp":
        from zoneinfo import ZoneInfo

        return value.astimezone(ZoneInfo(TIMEZONE)).isoformat()
    if reso in DECIMALS:
        return str(Decimal(value).quantize(Decimal(DECIMALS[reso])))
    if reso in FLOATS:
        return f"{value:.6f}"
    return str(value)


def _expected_value(reso: str, text: str) -> Any:
    if text == "":
        return None
    if reso == "StandardStatus":
        return _inverse(STATUS_WORDS)[text]
    if reso == "PropertyType":
        return _inverse(CLASS_WORDS)[text]
    if reso == "ModificationTimestamp":
        return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)
    if reso in INTEGERS:
        return int(text)
    if reso in DECIMALS:
        return Decimal(text)
    return float(text) if reso in FLOATS else text


def _inverse(words: dict[str, str]) -> dict[str, str]:
    return {word: name for name, word in words.items()}


class _Keys:
    """The server's host key and a client key pair, written where a client can find them."""

    def __init__(self, directory: Path, host, client):
        self.directory, self.host, self.client = directory, host, client
        self.fingerprint = host.get_fingerprint("sha256")

    @classmethod
    def create(cls, directory: Path) -> "_Keys":
        import asyncssh

        keys = cls(directory, asyncssh.generate_private_key("ssh-ed25519"),
                   asyncssh.generate_private_key("ssh-ed25519", comment="sandbox client"))
        directory.mkdir(parents=True, exist_ok=True)
        keys.client.write_private_key(str(keys.client_path))
        keys.client_path.chmod(0o600)
        return keys

    @property
    def client_path(self) -> Path:
        return self.directory / "client_key"

    @property
    def known_hosts_path(self) -> Path:
        return self.directory / "known_hosts"

    def write_known_hosts(self, port: int) -> None:
        key_type, key_data = self.host.export_public_key().decode().split()[:2]
        self.known_hosts_path.write_text(f"[127.0.0.1]:{port} {key_type} {key_data}\n")


@lru_cache(maxsize=None)
def _server_class() -> type:
    """An SSHServer accepting one user, by password or by the sandbox's client key."""
    import asyncssh

    class SandboxSSHServer(asyncssh.SSHServer):
        def __init__(self, users: dict[str, str], client_key: bytes, connections: set, sessions: dict):
            self.users, self.client_key, self.connections, self.sessions = users, client_key, connections, sessions
            self.connection = None

        def connection_made(self, conn) -> None:
            cap = self.sessions["cap"]
            if cap is not None and len(self.connections) >= cap:
                self.sessions["refused"] += 1
                conn.disconnect(asyncssh.DISC_TOO_MANY_CONNECTIONS, "Too many connections")
                return
            self.connection = conn
            self.connections.add(conn)
            self.sessions["most"] = max(self.sessions["most"], len(self.connections))

        def connection_lost(self, exc) -> None:
            self.connections.discard(self.connection)

        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            expected = self.users.get(username)
            return expected is not None and hmac.compare_digest(expected.encode(), password.encode())

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key) -> bool:
            return username in self.users and key.public_data == self.client_key

    return SandboxSSHServer


def _stopper(server, connections: set, loop: asyncio.AbstractEventLoop,
             thread: threading.Thread) -> Callable[[], None]:
    async def close() -> None:
        server.close()
        await server.wait_closed()
        for conn in list(connections):
            conn.close()
            await conn.wait_closed()
        # Sessions still open would be destroyed pending with the loop: end them first.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    return stop


FEED = SftpFeed()
