"""Topic administration: create, list, describe, grow partitions / change settings, delete.

Internal topics (`__consumer_state`) are listed only with `?internal=true`, and cannot be created, altered or
deleted here: the broker owns them, and deleting one would drop every group's offsets and leases.

Access (`security.acls`): the list shows the topics the caller may describe; create, describe, alter and delete each
need that operation on the topic.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, params

from goqueue.api.adapter_rules import refuse_internal_topic
from goqueue.api.http.auth import AUTH_ERRORS, AccessDep, require
from goqueue.api.http.body import CheckedBodyRoute
from goqueue.api.http.deps import BrokerDep, Flag
from goqueue.api.http.errors import METADATA_CHANGE, error_responses
from goqueue.consumers.state_store import is_internal
from goqueue.errors import (
    InvalidConfig,
    InvalidTopicName,
    NotLeader,
    NotReady,
    PartitionsCannotShrink,
    Timeout,
    TopicAlreadyExists,
    TopicNotFound,
    Unavailable,
)
from goqueue.models import TopicCreate, TopicInfo, TopicUpdate
from goqueue.security.acls import Operation, ResourceType, topic

router = APIRouter(prefix="/v1/topics", tags=["topics"], route_class=CheckedBodyRoute, responses=AUTH_ERRORS)


def _on_topic(operation: Operation) -> list[params.Depends]:
    return [require(ResourceType.TOPIC, operation, "name")]


@router.get("", response_model=list[TopicInfo], summary="List topics", responses=error_responses())
async def list_topics(broker: BrokerDep, access: AccessDep, internal: Flag = False) -> list[TopicInfo]:
    return [t for t in broker.list_topics() if (internal or not is_internal(t.name))
            and access.allowed(topic(t.name), Operation.DESCRIBE)]


@router.post("", response_model=TopicInfo, status_code=201, summary="Create a topic (409 if it exists)",
             responses=error_responses(InvalidTopicName, InvalidConfig, TopicAlreadyExists, METADATA_CHANGE))
async def create_topic(spec: TopicCreate, broker: BrokerDep, access: AccessDep) -> TopicInfo:
    access.check(topic(spec.name), Operation.CREATE)
    refuse_internal_topic(spec.name)
    return await broker.create_topic(spec)


@router.get("/{name}", response_model=TopicInfo, summary="Describe a topic and each partition",
            responses=error_responses(TopicNotFound, NotReady, NotLeader, Timeout, Unavailable),
            dependencies=_on_topic(Operation.DESCRIBE))
async def describe_topic(name: str, broker: BrokerDep, details: Flag = True) -> TopicInfo:
    """`details=false`: the metadata only (partition count, settings), from this broker's view at once — what a
    producing client looks up, never waiting on a partition leader."""
    broker.check_ready()
    return await broker.describe_topic(name, details=details)


@router.patch("/{name}", response_model=TopicInfo, summary="Grow partitions (never shrink) or change settings",
              responses=error_responses(TopicNotFound, InvalidTopicName, InvalidConfig, PartitionsCannotShrink,
                                        METADATA_CHANGE),
              dependencies=_on_topic(Operation.ALTER))
async def update_topic(name: str, update: TopicUpdate, broker: BrokerDep) -> TopicInfo:
    refuse_internal_topic(name)
    return await broker.update_topic(name, update.partitions, update.config)


@router.delete("/{name}", status_code=204, summary="Delete a topic and its data",
               responses=error_responses(TopicNotFound, InvalidTopicName, METADATA_CHANGE),
               dependencies=_on_topic(Operation.DELETE))
async def delete_topic(name: str, broker: BrokerDep) -> Response:
    refuse_internal_topic(name)
    await broker.delete_topic(name)
    return Response(status_code=204)
