"""`mlsfeeds demo`, the README's first command, as a newcomer runs it: from an empty folder on
the embedded defaults (SQLite and a local folder), it feeds the seven simulated MLS servers
through the pipeline and serves SOAP; stopped with SIGTERM, it leaves nothing running."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests
from lxml import etree

from tests.support.http import NS, envelope
from tests.support.servers import free_port, wait_for_http

DEMO = ("demo", "demo-password")


def search_total(base: str) -> int:
    reply = requests.post(f"{base}/soap", data=envelope("<m:SearchListings/>"), auth=DEMO, timeout=30,
                          headers={"Content-Type": "text/xml; charset=utf-8"})
    assert reply.status_code == 200, reply.text[:500]
    return int(etree.fromstring(reply.content).findtext(f".//{{{NS}}}TotalCount"))


def nothing_listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # exited, not yet reaped


def test_the_demo_serves_the_sandbox_and_stops_whole_on_sigterm(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSFEEDS_")}
    demo = subprocess.Popen([sys.executable, "-m", "mlsfeeds", "demo", "--bind", f"127.0.0.1:{port}"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_http(f"{base}/healthz", demo, timeout=240)
        assert search_total(base) == 2800  # 7 servers x 400 listings
        status = requests.get(f"{base}/status", auth=DEMO, timeout=30)
        assert status.status_code == 200 and "sqlmls" in status.text
        assert (tmp_path / "var" / "mlsfeeds.db").exists()
    finally:
        demo.send_signal(signal.SIGTERM)
        output, _ = demo.communicate(timeout=90)
    assert demo.returncode == 0, output[-3000:]
    assert nothing_listens(port), f"something still listens on {port} after the demo stopped:\n{output[-2000:]}"
    master = int(re.search(r"Listening at: \S+ \((\d+)\)", output).group(1))
    assert gone(master), f"gunicorn's master {master} outlived the demo"
    assert "Traceback" not in output, output[-3000:]
