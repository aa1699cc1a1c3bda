"""Client-held read positions of ordered members (issue 12, item 5), and their gRPC conversion both ways."""

from __future__ import annotations

import pytest

from goqueue.api.grpc import convert_groups
from goqueue.client.positions import ReadPositions
from goqueue.models import ConsumeRequest, ConsumeResponse, GroupState, ReadPosition

pytestmark = pytest.mark.unit


def ordered(generation: int = 1) -> ConsumeRequest:
    return ConsumeRequest(member_id="m", generation=generation)


def answer(generation: int, *positions: tuple[int, int]) -> ConsumeResponse:
    return ConsumeResponse(group="g", records=[], state=GroupState.STABLE, generation=generation,
                           positions=[ReadPosition(topic="t", partition=p, offset=o) for p, o in positions])


def held(request: ConsumeRequest) -> list[tuple[int, int]]:
    assert request.positions is not None
    return [(p.partition, p.offset) for p in request.positions]


def test_a_first_ordered_consume_says_it_holds_no_position_yet() -> None:
    assert held(ReadPositions().stamp("g", ordered())) == []  # empty, not absent: read from the committed offsets


def test_positions_follow_the_answers_and_a_new_generation_starts_over() -> None:
    positions = ReadPositions()
    first = positions.stamp("g", ordered())
    positions.advance("g", first, answer(1, (0, 5), (1, 2)))
    positions.advance("g", positions.stamp("g", ordered()), answer(1, (0, 7)))
    assert held(positions.stamp("g", ordered())) == [(0, 7), (1, 2)]
    assert held(positions.stamp("g", ordered(generation=2))) == []  # rebalanced: from the committed offsets
    positions.forget("g", "m")
    assert held(positions.stamp("g", ordered())) == []


def test_shared_consumes_and_explicit_positions_are_left_alone() -> None:
    positions = ReadPositions()
    shared = ConsumeRequest(consumer_id="c", topic="t")
    assert positions.stamp("g", shared).positions is None
    explicit = ConsumeRequest(member_id="m", generation=1, positions=[ReadPosition(topic="t", partition=0, offset=3)])
    assert positions.stamp("g", explicit) is explicit


@pytest.mark.parametrize("sent", [None, [], [ReadPosition(topic="t", partition=2, offset=9)]])
def test_grpc_keeps_absent_empty_and_listed_positions_apart(sent: list[ReadPosition] | None) -> None:
    request = ConsumeRequest(member_id="m", generation=1, positions=sent)
    _, back = convert_groups.consume_from_proto(convert_groups.consume_to_proto("g", request))
    assert back.positions == sent
    response = answer(1, (0, 4), (1, 8))
    assert convert_groups.consume_response_from_proto(
        convert_groups.consume_response_to_proto(response)).positions == response.positions
