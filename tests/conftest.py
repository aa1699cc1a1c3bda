"""Settings shared by every test tier, and the `unit` tier's promise enforced (see unit_isolation.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings
from unit_isolation import unit_isolation

# Wall-clock deadlines make property tests flaky on a loaded 2-core CI machine; slowness is the benchmarks' job.
settings.register_profile("goqueue", deadline=None, print_blob=True)
settings.load_profile("goqueue")


def _isolated(item: pytest.Item) -> Iterator[None]:
    """Run one phase of a `unit` test (its fixtures' set-up and teardown included) with sockets and processes
    forbidden; a violation fails the phase even when the test caught the error it raised."""
    if item.get_closest_marker("unit") is None:
        yield
        return
    with unit_isolation() as violations:
        yield
    if violations:
        pytest.fail(f"{item.nodeid} is marked unit but {violations[0]}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    return (yield from _isolated(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _isolated(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    return (yield from _isolated(item))
