"""Property-based fuzzing of the HTTP API from its own OpenAPI document (schemathesis), against a real broker.

Every operation the document lists is called with generated requests, valid ones (positive mode) and ones that
break the documented schema (negative mode: wrong types, out-of-range numbers, missing fields), for a bounded number
of examples with hypothesis's derandomized (fixed) seed, so a run is repeatable. Each answer must be no 5xx, have a
status the document lists for that operation, and a body that matches the documented schema for that status — for
errors, the one error body with a `code` among those the operation declares. Fixture state gives the generated
requests something to hit: a topic named `fuzz` with a record, and a shared group named `fuzz`.

The broker runs with `limits.maxWait` at 50 ms so long-polls the fuzzer asks for (up to 2^31 ms) return quickly.
"""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.broker_process import BrokerProcess

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 40
# Each operation runs three times: valid requests to the fixture's topic, group and partition 0 (the fuzzer's own
# path values rarely name anything that exists, so the code behind the lookups would go untried), valid requests
# with generated path values, and invalid requests.
EXISTING = {"topic": "fuzz", "name": "fuzz", "group": "fuzz", "partition": 0, "broker_id": 0}
FLAVOURS = [(GenerationMode.POSITIVE, True), (GenerationMode.POSITIVE, False), (GenerationMode.NEGATIVE, False)]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_no_server_error_and_every_answer_is_documented(fuzz_broker: BrokerProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_broker.url}/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30, "the document lists the API's operations"
    for operation, (mode, targeted) in itertools.product(operations, FLAVOURS):
        names = {p.name for p in operation.iter_parameters() if p.location.value == "path"}
        if targeted and (not names or operation.method.upper() == "DELETE"):
            continue  # nothing to target; or it would delete the fixture's topic or group under the rest
        path = {name: value for name, value in EXISTING.items() if name in names} if targeted else None

        @given(case=operation.as_strategy(mode, path_parameters=path))
        @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=fuzz_broker.url, timeout=30, checks=CHECKS)

        try:
            call()
        except Unsatisfiable:
            continue  # negative mode, and the operation has no input that could break its schema (no parameters)
        except Exception as exc:  # collected: one report naming every operation that failed, not just the first
            flavour = f"{mode.value} examples{', existing topic and group' if targeted else ''}"
            failures.append(f"{operation.label} ({flavour}): {exc}")
    assert not failures, "\n\n".join(failures)
