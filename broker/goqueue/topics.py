"""The topic registry: which topics exist, with how many partitions and which settings.

On-disk format: `<walDir>/topics.json`, `{"version": 1, "topics": {name: TopicMeta}}`, replaced atomically (write
temp, fsync, rename, fsync directory) on every change, so a crash leaves the old or the new registry, never half.
A registry that cannot be parsed stops the broker with a clear error instead of starting empty: starting empty
would make every partition directory look orphaned and invite deleting data.

This is the single-broker store; the clustering layer replaces it with the Raft-replicated metadata, keeping
the same `TopicMeta` shape.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from goqueue.errors import InvalidTopicName, PartitionsCannotShrink, TopicAlreadyExists, TopicNotFound
from goqueue.models import TopicConfig, TopicCreate, topic_name_problem
from goqueue.storage.sync import write_file_atomically

REGISTRY_FILE = "topics.json"


class RegistryCorrupt(Exception):
    """topics.json exists but cannot be read; the broker refuses to start rather than lose track of data."""


class TopicMeta(BaseModel):
    name: str
    partitions: int
    replication_factor: int
    config: TopicConfig
    created_at_s: float = Field(default_factory=time.time)


class TopicRegistry:
    def __init__(self, wal_dir: Path) -> None:
        self.path = wal_dir / REGISTRY_FILE
        self.topics: dict[str, TopicMeta] = {}

    def load(self) -> None:
        if not self.path.exists():
            return
        try:
            raw = json.loads(self.path.read_bytes())
            self.topics = {name: TopicMeta.model_validate(meta) for name, meta in raw["topics"].items()}
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise RegistryCorrupt(f"{self.path} is unreadable ({exc}); restore it from a metadata backup "
                                  "(goqueue-admin restore metadata) before starting") from exc

    def _save(self) -> None:
        data = {"version": 1, "topics": {name: meta.model_dump(mode="json") for name, meta in self.topics.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomically(self.path, json.dumps(data, indent=1, sort_keys=True).encode())

    def get(self, name: str) -> TopicMeta:
        try:
            return self.topics[name]
        except KeyError:
            raise TopicNotFound(f"topic {name!r} does not exist", topic=name) from None

    def create(self, spec: TopicCreate) -> TopicMeta:
        problem = topic_name_problem(spec.name)
        if problem:
            raise InvalidTopicName(f"invalid topic name {spec.name!r}: {problem}")
        if spec.name in self.topics:
            raise TopicAlreadyExists(f"topic {spec.name!r} already exists", topic=spec.name)
        meta = TopicMeta(name=spec.name, partitions=spec.partitions, replication_factor=spec.replication_factor,
                         config=spec.config)
        self.topics[spec.name] = meta
        self._save()
        return meta

    def grow(self, name: str, partitions: int) -> TopicMeta:
        meta = self.get(name)
        if partitions < meta.partitions:
            raise PartitionsCannotShrink(
                f"topic {name!r} has {meta.partitions} partitions; partitions can only grow")
        meta = meta.model_copy(update={"partitions": partitions})
        self.topics[name] = meta
        self._save()
        return meta

    def set_config(self, name: str, config: TopicConfig) -> TopicMeta:
        meta = self.get(name).model_copy(update={"config": config})
        self.topics[name] = meta
        self._save()
        return meta

    def delete(self, name: str) -> TopicMeta:
        meta = self.get(name)
        del self.topics[name]
        self._save()
        return meta
