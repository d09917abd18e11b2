"""``mlsfeeds demo``: the embedded mode, ready to call in one command."""

from __future__ import annotations

from sqlalchemy import func, select

from core import db
from core.clients import upsert_client
from core.models import Listing
from core.settings import Settings
from mlsfeeds.seed import print_progress, seed

DEMO_SOURCES = ["naples", "austin", "denver"]
DEMO_LISTINGS = 3000
DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"


def prepare(settings: Settings, public_url: str) -> None:
    db.upgrade(settings.database_url)
    sessions = db.session_factory(db.make_engine(settings.database_url))
    with sessions() as session:
        if not session.scalar(select(func.count()).select_from(Listing)):
            print(f"seeding {DEMO_LISTINGS:,} synthetic listings into {', '.join(DEMO_SOURCES)}...")
            seed(session, DEMO_LISTINGS, DEMO_SOURCES, 1, progress=print_progress)
        upsert_client(session, DEMO_USER, DEMO_PASSWORD, secret_key=settings.secret_key,
                      all_sources=True, role="operator")
        session.commit()
    print(_how_to_call(public_url))


def _how_to_call(url: str) -> str:
    return f"""
mlsfeeds demo: SOAP at {url}/soap, WSDL at {url}/soap?wsdl
client: {DEMO_USER} / {DEMO_PASSWORD} (an operator: sees every source)

Python (zeep):
  python -c "import zeep, requests; s=requests.Session(); s.auth=('{DEMO_USER}','{DEMO_PASSWORD}'); \\
c=zeep.Client('{url}/soap?wsdl', transport=zeep.Transport(session=s)); \\
r=c.service.SearchListings(City='Naples', StandardStatus=['Active'], PageSize=3); print(r.TotalCount, [l.ListingKey for l in r.Listings.ListingSummary])"

curl:
  curl -s -u {DEMO_USER}:{DEMO_PASSWORD} -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: "GetFeedStatus"' \\
    --data '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetFeedStatus xmlns="urn:mlsfeeds:soap:1"/></s:Body></s:Envelope>' \\
    {url}/soap

Ctrl-C stops the server.
"""
