"""The fleet: hosts in network namespaces (tests/fleet/net.py). Marked ``fleet``: the default suite
runs only the scenarios also marked ``fleet_short``; ``./run fleet`` or ``pytest tests/fleet -m fleet``
runs them all."""

from __future__ import annotations

import pytest

from tests.fleet.net import Net, unavailable


@pytest.fixture
def net():
    why = unavailable()
    if why:
        pytest.skip(why)
    fleet = Net()
    try:
        yield fleet
    finally:
        fleet.close()


def pytest_collection_modifyitems(config, items):
    """The whole suite runs only the ``fleet_short`` scenario (CI's 25-minute budget); all of them
    run with ``./run fleet`` (LOGPIPE_FLEET=all) or when only tests/fleet is asked for."""
    import os
    from pathlib import Path

    here = Path(__file__).parent.resolve()
    args = [Path(a.split("::")[0]).resolve() for a in config.args]
    if os.environ.get("LOGPIPE_FLEET") == "all" or (args and all(here in (a, *a.parents) for a in args)):
        return
    skip = pytest.mark.skip(reason="a long fleet scenario: ./run fleet (or pytest tests/fleet) runs it")
    for item in items:
        if item.get_closest_marker("fleet") and not item.get_closest_marker("fleet_short"):
            item.add_marker(skip)
