"""Topic administration: create, list, describe, grow partitions / change settings, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response

from goqueue.api.http.deps import BrokerDep
from goqueue.models import TopicCreate, TopicInfo, TopicUpdate

router = APIRouter(prefix="/v1/topics", tags=["topics"])


@router.get("", response_model=list[TopicInfo], summary="List topics")
async def list_topics(broker: BrokerDep) -> list[TopicInfo]:
    return broker.list_topics()


@router.post("", response_model=TopicInfo, status_code=201, summary="Create a topic (409 if it exists)")
async def create_topic(spec: TopicCreate, broker: BrokerDep) -> TopicInfo:
    return broker.create_topic(spec)


@router.get("/{name}", response_model=TopicInfo, summary="Describe a topic and each partition")
async def describe_topic(name: str, broker: BrokerDep) -> TopicInfo:
    broker.check_ready()
    return broker.describe_topic(name)


@router.patch("/{name}", response_model=TopicInfo, summary="Grow partitions (never shrink) or change settings")
async def update_topic(name: str, update: TopicUpdate, broker: BrokerDep) -> TopicInfo:
    return broker.update_topic(name, update.partitions, update.config)


@router.delete("/{name}", status_code=204, summary="Delete a topic and its data")
async def delete_topic(name: str, broker: BrokerDep) -> Response:
    broker.delete_topic(name)
    return Response(status_code=204)
