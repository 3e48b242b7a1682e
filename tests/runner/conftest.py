# Fixtures for the runner tests; the harness is runner_harness.py.
import os

import pytest

from runner_harness import *  # noqa: F401,F403
from runner_harness import Session


@pytest.fixture(scope="session", autouse=True)
def _mplconfig(tmp_path_factory):
    # One font cache for the whole run: matplotlib builds it on first use.
    os.environ["CELLBLOCK_TEST_MPLCONFIGDIR"] = str(tmp_path_factory.mktemp("mpl"))


@pytest.fixture
def make_session(tmp_path):
    made = []

    def make(**kwargs):
        sub = tmp_path / ("s%d" % len(made))
        sub.mkdir()
        session = Session(sub, **kwargs)
        made.append(session)
        return session
    yield make
    for session in made:
        session.close()


@pytest.fixture
def session(make_session):
    return make_session()

