"""`make test`'s two lanes (harness/goqueue_harness/pytest_plugin.py, docs/TESTING.md → Two lanes): every test that
uses a machine-wide piece is in the one cluster unit, which xdist hands to one worker whole; every other test file
is a unit of its own, so a module's fixtures are set up once."""

from __future__ import annotations

import pytest

from goqueue_harness import pytest_plugin
from goqueue_harness.pytest_plugin import CLUSTER_LANE, lane_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("nodeid", [
    "tests/harness/test_harness_kind.py::test_make_up_on_kind_twice_then_make_down",
    "tests/integration/operator/test_operator_topics.py::test_topic_lifecycle_create_grow_configure_delete",
    "tests/integration/charts/test_goqueue_chart_install.py::test_an_upgrade_rolls_the_brokers",
    "e2e/test_e2e_tls.py::test_a_tls_cluster_serves_applications_that_trust_its_ca[kind]",
    "tests/integration/test_images.py::test_no_compiler_in_the_final_image[broker]",
    "tests/integration/test_network_partition.py::test_minority_leader",
])
def test_machine_wide_tests_share_the_cluster_unit(nodeid: str) -> None:
    assert lane_of(nodeid) == CLUSTER_LANE


def test_every_other_test_is_grouped_by_its_file() -> None:
    assert lane_of("tests/integration/test_cluster.py::test_sigstop_leader_no_split_brain") == \
        "tests/integration/test_cluster.py"
    assert lane_of("tests/unit/test_storage_batch.py::test_roundtrip[3]") == "tests/unit/test_storage_batch.py"
    assert lane_of("tests/integration/chart_render/test_goqueue_chart_render.py::test_x") == \
        "tests/integration/chart_render/test_goqueue_chart_render.py"


def test_xdist_schedules_by_lane() -> None:
    scheduler_class = pytest_plugin.lanes_scheduler()
    scheduler = scheduler_class.__new__(scheduler_class)  # its __init__ needs xdist's worker specs, not used here
    assert scheduler._split_scope("e2e/test_e2e_topics.py::test_topic_lifecycle_with_kubectl[local]") == CLUSTER_LANE
    assert scheduler._split_scope("tests/unit/test_gc_pauses.py::test_a") == "tests/unit/test_gc_pauses.py"
