import pytest

from core.errors import ConfigError
from core.settings import Settings


def test_defaults_need_no_configuration(tmp_path):
    settings = Settings.from_env({"MLSFEEDS_SECRET_KEY_FILE": str(tmp_path / "secret")})
    assert settings.database_url == "sqlite:///./var/mlsfeeds.db"
    assert settings.storage_url == "file://./var/objects"
    assert settings.public_url == "http://127.0.0.1:8000"
    # The embedded secret is created once and then reused.
    assert Settings.from_env({"MLSFEEDS_SECRET_KEY_FILE": str(tmp_path / "secret")}).secret_key == settings.secret_key


def test_public_url_is_configuration_and_defaults_to_the_bind_address():
    env = {"MLSFEEDS_SECRET_KEY": "s", "MLSFEEDS_BIND": "0.0.0.0:9000"}
    assert Settings.from_env(env).public_url == "http://127.0.0.1:9000"
    env["MLSFEEDS_PUBLIC_URL"] = "https://feeds.example.com/"
    assert Settings.from_env(env).public_url == "https://feeds.example.com"


@pytest.mark.parametrize("name,value", [
    ("MLSFEEDS_WORKERS", "many"),
    ("MLSFEEDS_WORKERS", "0"),
    ("MLSFEEDS_BIND", "localhost"),
    ("MLSFEEDS_PUBLIC_URL", "feeds.example.com"),
])
def test_a_bad_value_fails_and_names_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({"MLSFEEDS_SECRET_KEY": "s", name: value})
