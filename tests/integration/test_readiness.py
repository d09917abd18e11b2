"""/readyz follows the database: 503 with the reason while PostgreSQL refuses this database's
connections, 200 again once it takes them; /healthz (liveness) answers all along."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import backend_param
from tests.support.databases import fresh_database, server_url
from tests.support.servers import soap_server, wait_for


@pytest.mark.parametrize("backend", [backend_param("postgres")])
def test_readyz_goes_503_while_the_database_is_away_and_200_after(backend, tmp_path):
    with fresh_database(backend, tmp_path) as url:
        name = make_url(url).database
        admin = create_engine(server_url(backend), isolation_level="AUTOCOMMIT")
        env = {"MLSFEEDS_DATABASE_URL": url, "MLSFEEDS_SECRET_KEY": "k", "MLSFEEDS_LOG_LEVEL": "WARNING",
               "MLSFEEDS_STORAGE_URL": f"file://{tmp_path / 'objects'}"}
        try:
            with soap_server(env, workers=1) as server:
                def ready():
                    return requests.get(server.base + "/readyz", timeout=30)

                assert ready().status_code == 200
                away(admin, name, True)
                # (a Response is falsy for a 4xx/5xx status: wait for its text)
                down = wait_for(lambda: (r := ready()).status_code == 503 and r.text, 30, "/readyz to say 503")
                assert "database: down" in down and "not currently accepting connections" in down
                assert requests.get(server.base + "/healthz", timeout=30).status_code == 200
                away(admin, name, False)
                back = wait_for(lambda: (r := ready()).status_code == 200 and r.text, 30, "/readyz to say 200 again")
                assert "database: ok" in back
        finally:
            away(admin, name, False)
            admin.dispose()


def away(admin, name: str, gone: bool) -> None:
    """The database refuses new connections and its open ones are cut (or takes them again)."""
    with admin.connect() as conn:
        conn.execute(text(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {'false' if gone else 'true'}"))
        if gone:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
