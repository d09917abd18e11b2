"""SOAP clients and their entitlements."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import CoreError
from core.models import Client, ClientSource, Source
from core.passwords import hash_password, seal

ROLES = ("consumer", "operator")


class UnknownSources(CoreError):
    def __init__(self, missing: Sequence[str]):
        super().__init__("no such source: " + ", ".join(sorted(missing)))
        self.missing = list(missing)


def upsert_client(
    session: Session,
    name: str,
    password: str,
    *,
    secret_key: str,
    sources: Sequence[str] = (),
    all_sources: bool = False,
    role: str = "consumer",
) -> tuple[Client, bool]:
    """Create the client, or replace its password, role and entitlements. Returns (client, created)."""
    if role not in ROLES:
        raise CoreError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not password:
        raise CoreError("the password is empty")
    known = set(session.scalars(select(Source.id).where(Source.id.in_(list(sources)))))
    if missing := set(sources) - known:
        raise UnknownSources(sorted(missing))
    client = session.scalar(select(Client).where(Client.name == name))
    created = client is None
    if created:
        client = Client(name=name)
        session.add(client)
    client.role = role
    client.all_sources = all_sources or role == "operator"
    client.password_hash = hash_password(password)
    client.password_sealed = seal(password, secret_key)
    client.enabled = True
    client.sources.clear()
    session.flush()  # delete the old entitlements before inserting rows with the same keys
    client.sources.extend(ClientSource(source_id=s) for s in dict.fromkeys(sources))
    session.flush()
    return client, created
