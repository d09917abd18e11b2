"""Fixtures shared by every suite.

Database tests run on SQLite always, and on PostgreSQL / MariaDB when their URLs are set
(MLSFEEDS_TEST_POSTGRES_URL, MLSFEEDS_TEST_MARIADB_URL; .ci/run sets both). Without them those
cases are skipped, and the skip reason says which variable to set.
"""

from __future__ import annotations

import pytest

from tests.support.databases import MARIADB_ENV, POSTGRES_ENV, fresh_database, server_url

# A real S3 server (SeaweedFS) for the tests that ask for it: fixtures s3_server, s3_bucket, s3_proxy.
pytest_plugins = ["tests.support.s3"]

SERVICE_BACKENDS = ["sqlite", "postgres"]


def backend_param(backend: str):
    marks = []
    if backend != "sqlite":
        env = POSTGRES_ENV if backend == "postgres" else MARIADB_ENV
        marks.append(pytest.mark.skipif(not server_url(backend), reason=f"set {env} to run on {backend}"))
    return pytest.param(backend, marks=marks, id=backend)


@pytest.fixture
def database_url(request, tmp_path):
    """An empty database at schema head, on the backend the test is parametrized with."""
    backend = getattr(request, "param", "sqlite")
    with fresh_database(backend, tmp_path) as url:
        yield url
