"""One Alembic history builds the schema everywhere, and it matches the models (`alembic check`)."""

import pytest
from sqlalchemy import create_engine, inspect

from core import db
from core.models import Base
from tests.conftest import backend_param


@pytest.mark.parametrize("database_url", [backend_param(b) for b in ("sqlite", "postgres", "mariadb")],
                         indirect=True)
def test_migrations_build_exactly_the_models(database_url):
    db.check(database_url)  # raises if autogenerate finds any difference
    engine = create_engine(database_url)
    assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)
    engine.dispose()


def test_upgrade_twice_is_harmless(tmp_path):
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    db.upgrade(url)
    db.upgrade(url)
    db.check(url)
