"""One live service for every contract test: SQLite, seeded by prepare_database, under gunicorn.

The service publishes a public URL that nothing listens on, as a deployment behind a proxy
would; every client here is pointed at the local port explicitly, so a client that ignores its
endpoint override fails loudly instead of silently calling the address in the WSDL.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from sqlalchemy import select

from core.models import Listing
from tests.support.databases import fresh_database
from tests.support.servers import soap_service
from tests.support.soap import Deployment, prepare_database, service_env

PUBLIC_URL = "https://feeds.example.com/api"
ENTITLED = "a"  # the only source alice may read
FORBIDDEN = "b"  # a source alice may not read


@pytest.fixture(scope="session")
def deployment(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("contract")
    with fresh_database("sqlite", tmp) as url, ExitStack() as stack:
        prepare_database(url)
        log_path = tmp / "gunicorn.log"
        base = stack.enter_context(soap_service(service_env(url, PUBLIC_URL), log_path=log_path))
        yield Deployment(base, url, PUBLIC_URL, log_path)


@pytest.fixture(scope="session")
def endpoint(deployment) -> str:
    return deployment.base_url + "/soap"


@pytest.fixture(scope="session")
def active_keys(deployment) -> set[str]:
    """Listing keys of the Active, not removed listings of source a: what alice's search pages through."""
    with deployment.sessions()() as session:
        return set(session.scalars(
            select(Listing.listing_key).where(
                Listing.source_id == ENTITLED,
                Listing.standard_status == "Active",
                Listing.removed_at.is_(None),
            )
        ))


@pytest.fixture(scope="session")
def sample_listing(deployment):
    """A visible listing of source a with at least two photos, as a dict of its columns."""
    with deployment.sessions()() as session:
        row = session.scalars(
            select(Listing).where(
                Listing.source_id == ENTITLED, Listing.removed_at.is_(None), Listing.photos_count >= 2
            ).order_by(Listing.listing_key).limit(1)
        ).one()
        return {c.key: getattr(row, c.key) for c in Listing.__table__.columns}


@pytest.fixture(scope="session")
def forbidden_key(deployment) -> str:
    """A real listing key of source b, so a Forbidden cannot be a NotFound in disguise."""
    with deployment.sessions()() as session:
        return session.scalars(
            select(Listing.listing_key).where(Listing.source_id == FORBIDDEN).order_by(Listing.listing_key).limit(1)
        ).one()
