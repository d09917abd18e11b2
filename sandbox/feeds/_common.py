"""Small helpers the simulated servers share: atomic files, local times, a self-signed certificate, quirks."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo


@contextmanager
def atomic_file(path: Path, mtime: dt.datetime | None = None) -> Iterator[BinaryIO]:
    """A binary file written beside ``path`` and renamed over it when the block ends.

    A server reading ``path`` meanwhile serves the old file whole, never half of the new one.
    ``mtime`` sets the modification time (servers list it; connectors compare it).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".part-", suffix=path.suffix)
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        if mtime is not None:
            os.utime(temp, (mtime.timestamp(), mtime.timestamp()))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def local_text(moment: dt.datetime, timezone: str, fmt: str) -> str:
    """An aware time as a naive local time string, as many MLS exports write them."""
    return moment.astimezone(ZoneInfo(timezone)).strftime(fmt)


def from_local_text(text: str, timezone: str, fmt: str) -> dt.datetime:
    """What a reader gets back from ``local_text``: the local time read as its first occurrence.

    Naive local times lose the hour that repeats when clocks fall back; this is the time a
    reader (fold=0) ends up with, in UTC.
    """
    naive = dt.datetime.strptime(text, fmt)
    return naive.replace(tzinfo=ZoneInfo(timezone)).astimezone(dt.timezone.utc)


def business_day(timezone: str) -> dt.date:
    return dt.datetime.now(ZoneInfo(timezone)).date()


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for ``host`` (an IP address) and its key, as PEM files in ``directory``.

    Returns (certificate, key). The certificate is its own CA: clients trust it by naming it.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return cert_path, key_path


class Quirks:
    """A feed's quirks: how its server departs from the textbook, as real servers do.

    Kept in ``root/<kind>/quirks.json`` (``write_quirks``) and re-read by the running server
    whenever the file changes, so a test or ``World.set_quirks`` can make a server end its
    feed early, or send GetObject parts the way some vendor does, while it runs.
    """

    def __init__(self, root: Path, kind: str):
        self._path = Path(root) / kind / "quirks.json"
        self._seen: tuple | None = None
        self._quirks: dict = {}

    def get(self) -> dict:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return {}
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if signature != self._seen:
            self._quirks, self._seen = json.loads(self._path.read_text(encoding="utf-8")), signature
        return self._quirks


def write_quirks(root: Path, kind: str, quirks: dict, known: dict[str, str]) -> None:
    """Set the quirks of the ``kind`` feed under ``root`` (all at once; ``{}`` clears them).

    ``known`` is the feed's ``QUIRKS`` table (name -> what it does): any other name is refused.
    """
    if unknown := sorted(set(quirks) - set(known)):
        raise ValueError(f"the {kind} sandbox has no quirk {unknown[0]!r}; it has {', '.join(sorted(known))}")
    with atomic_file(Path(root) / kind / "quirks.json") as out:
        out.write(json.dumps(quirks, sort_keys=True).encode())


PORTS_FILE = "ports.json"


def saved_port(root: Path, kind: str) -> int:
    """The port the ``kind`` server of this sandbox folder had last time, if it is free now; else 0
    (any free port). Links to a sandbox server (photo URLs in the database) then survive a restart."""
    import socket

    try:
        port = int(json.loads((Path(root) / PORTS_FILE).read_text()).get(kind, 0))
    except (FileNotFoundError, ValueError, AttributeError):
        return 0
    if not port:
        return 0
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def save_ports(root: Path, ports: dict[str, int]) -> None:
    """Remember the servers' ports in the sandbox folder (see ``saved_port``)."""
    path = Path(root) / PORTS_FILE
    try:
        known = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        known = {}
    with atomic_file(path) as out:
        out.write(json.dumps({**known, **ports}, indent=1, sort_keys=True).encode())
