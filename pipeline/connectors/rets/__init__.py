"""RETS 1.7.2 (download kind ``rets``), laid out like the specification.

    session.py     login (Digest/Basic, User-Agent, RETS-UA-Authorization, cookies), logout
    search.py      Search with DMQL2, Limit/Offset paging, time-window paging where Offset fails
    metadata.py    GetMetadata in COMPACT: resources, classes, fields, lookups
    getobject.py   GetObject, multipart replies streamed part by part (multipart.py)
    compact.py     the COMPACT / COMPACT-DECODED format, read as a stream
    replies.py     the <RETS> envelope, and reply codes mapped to the pipeline's errors
    connector.py   RetsConnector: the Connector of the pipeline (spec keys documented there)

``CONNECTOR`` is the connector the pipeline uses; it makes a ``requests.Session`` per fetch.
"""

from pipeline.connectors.rets.connector import RetsConnector, RetsSettings

CONNECTOR = RetsConnector()

__all__ = ["CONNECTOR", "RetsConnector", "RetsSettings"]
