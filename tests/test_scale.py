"""Many sessions on one daemon: past czmq's default cap of 1024 sockets
(about 113 sessions), which once made the daemon assert and take every
session down with it."""
import json

from cbtest import Daemon

COUNT = 120


def test_more_sessions_than_the_default_socket_cap(tmp_path):
    conf = tmp_path / "cellblockd.conf"
    conf.write_text("max-sessions-per-user = 1000\nmemory = 256M\nidle-timeout = 0\n")
    d = Daemon(["--config", str(conf)])
    try:
        for i in range(COUNT):
            p = d.cli("new", "--name", f"many{i}")
            assert p.returncode == 0, (i, p.stderr, d.log_text()[-2000:])
        listed = json.loads(d.cli("ls", "--json", check=True).stdout)
        assert len(listed) == COUNT
        p = d.cli("run", f"many{COUNT - 1}", "print('alive')", timeout=120)
        assert p.returncode == 0 and p.stdout == "alive\n", p.stderr
        assert d.alive(), d.log_text()[-3000:]
    finally:
        d.stop()
