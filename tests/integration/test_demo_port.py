"""`mlsfeeds demo` checks its port before any work, and says how to pick another."""

import socket
import time

from tests.support.sandbox import cli


def test_demo_refuses_a_busy_port_at_once_and_names_the_way_out(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = cli({"MLSFEEDS_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}, "demo", "--bind",
                     f"127.0.0.1:{port}", check=False)
        took = time.monotonic() - started
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr and "--bind" in result.stderr and "MLSFEEDS_BIND" in result.stderr
    assert took < 15 and not (tmp_path / "demo.db").exists(), "nothing was done before the check"
