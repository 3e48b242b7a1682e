"""Fixtures for the end-to-end tests; the helpers live in cbtest.py so test
files can import them (two conftest modules would shadow each other)."""
import os

import pytest

from cbtest import *  # noqa: F401,F403  (re-exported for fixtures)
from cbtest import Daemon


@pytest.fixture(scope="module")
def daemon():
    d = Daemon()
    yield d
    assert d.alive(), "cellblockd died during the tests:\n" + d.log_text()[-5000:]
    d.stop()


@pytest.fixture
def session(daemon):
    """A fresh session and a ready BlockingKernelClient on it."""
    path = daemon.new()
    kc = daemon.client(path)
    yield kc
    kc.stop_channels()
    name = os.path.basename(path)[:-5]
    daemon.cli("kill", name)


