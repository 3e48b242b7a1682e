"""Fixtures for the end-to-end tests; the helpers live in cbtest.py so test
files can import them (two conftest modules would shadow each other)."""
import os
import resource

import pytest

# Hundreds of tests each open jupyter_client sockets in this one process;
# a default soft limit of 1024 descriptors is too tight for the whole run.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _hard == resource.RLIM_INFINITY or _hard > 65536:
    _hard = 65536
if _soft < _hard:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
# jupyter_client shares zmq.Context.instance(), whose default cap is 1023
# sockets: raise it before the first socket exists.
import zmq  # noqa: E402
zmq.Context.instance().set(zmq.MAX_SOCKETS, 16384)

from cbtest import *  # noqa: F401,F403  (re-exported for fixtures)
from cbtest import Daemon


def pytest_collection_modifyitems(items):
    # The sanitizer check goes last, when every other test's programs are gone.
    items.sort(key=lambda item: item.path.name == "test_sanitizers.py")


@pytest.fixture(scope="module")
def daemon():
    d = Daemon()
    yield d
    assert d.alive(), "cellblockd died during the tests:\n" + d.log_text()[-5000:]
    d.stop()


@pytest.fixture
def gw():
    """A daemon with its HTTP front (tests/gwtest.py), for one test."""
    from gwtest import Gateway
    g = Gateway()
    yield g
    g.stop()


@pytest.fixture
def api(gw):
    """Kernel Gateway REST calls on gw with a token of root's."""
    from gwtest import Api
    a = Api(gw, gw.token("root"))
    yield a
    a.close()


@pytest.fixture
def session(daemon):
    """A fresh session and a ready BlockingKernelClient on it."""
    path = daemon.new()
    kc = daemon.client(path)
    yield kc
    kc.stop_channels()
    name = os.path.basename(path)[:-5]
    daemon.cli("kill", name)




# jupyter_client 7.4.9's stop_channels stops the channel threads but leaves
# the zmq context each client created (an I/O thread and its descriptors)
# until garbage collection, which a long run outpaces: that is the "Too many
# open files" a late test's heartbeat thread used to hit. Closing a client
# closes what it opened.
from jupyter_client.client import KernelClient  # noqa: E402

_stop_channels = KernelClient.stop_channels


def _stop_channels_and_context(self):
    _stop_channels(self)
    if getattr(self, "_created_context", False) and not self.context.closed:
        self.context.destroy(linger=0)


KernelClient.stop_channels = _stop_channels_and_context


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="module", autouse=True)
def _fd_budget(request):
    """Report a module that leaves descriptors open in the test process."""
    before = _open_fds()
    yield
    import gc
    gc.collect()
    grown = _open_fds() - before
    if grown > 64:
        import warnings
        warnings.warn(f"{request.module.__name__} left {grown} descriptors open")
