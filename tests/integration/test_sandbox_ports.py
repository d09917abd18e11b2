"""A sandbox folder keeps its servers' ports: links to a sandbox MLS (photo URLs in the database,
sources.toml) still work after a restart."""

import socket

from sandbox.world import World, start_servers


def test_servers_come_back_on_the_ports_they_had(tmp_path):
    world = World.create(tmp_path / "sandbox", 3, seed=1)
    first, _ = start_servers(world)
    urls = sorted(server.url for server in first)
    for server in first:
        server.stop()
    again, _ = start_servers(World.open(tmp_path / "sandbox"))
    try:
        assert sorted(server.url for server in again) == urls
    finally:
        for server in again:
            server.stop()


def test_a_port_taken_meanwhile_gives_way_to_a_free_one(tmp_path):
    world = World.create(tmp_path / "sandbox", 3, seed=1, kinds=("http",))
    (server,), _ = start_servers(world)
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    server.stop()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        (moved,), _ = start_servers(world)
        try:
            assert f":{port}/" not in moved.url + "/"
        finally:
            moved.stop()
