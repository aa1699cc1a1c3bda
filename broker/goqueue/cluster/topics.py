"""The topic registry: a read view of the topics in the cluster metadata (the Raft-replicated state).

Changes go through `Broker.create_topic` & co., which propose metadata commands; this view only answers "which
topics exist, with how many partitions and which settings". It caches the typed `TopicMeta` objects and rebuilds
them only when the metadata applied a new command, so hot paths (every produce looks its topic up) stay cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from pydantic import BaseModel

from goqueue.errors import TopicNotFound
from goqueue.models import TopicConfig, load_stored
from goqueue.replication.state import ConfigValue
from goqueue.replication.view import MetadataView, PartitionView, StateView

log = logging.getLogger(__name__)


class TopicMeta(BaseModel):
    name: str
    partitions: int
    replication_factor: int
    config: TopicConfig
    created_at_s: float = 0.0
    internal: bool = False


class TopicRegistry:
    def __init__(self, state: Callable[[], StateView]) -> None:
        self._state = state
        self._cache: dict[str, TopicMeta] = {}
        self._cached_at = -1
        self._reported: set[tuple[str, str, str]] = set()  # stored settings already logged as fixed

    @property
    def topics(self) -> dict[str, TopicMeta]:
        state = self._state()
        if state.get("applied", 0) != self._cached_at:
            self._cache = {name: TopicMeta(
                name=name, partitions=t["partitions"], replication_factor=t["replication_factor"],
                config=self._config(name, t["config"]), created_at_s=t["created_at_s"],
                internal=t.get("internal", False)) for name, t in state["topics"].items()}
            self._cached_at = state.get("applied", 0)
        return self._cache

    def _config(self, topic: str, stored: Mapping[str, ConfigValue]) -> TopicConfig:
        """Read tolerantly: a newer broker may have written a setting this one lacks (ignored), and an older one a
        value out of today's range (clamped, logged once per topic and value), so no request fails on it."""
        config, fixed = load_stored(TopicConfig, dict(stored))
        for fix in fixed:
            seen = (topic, fix.field, repr(fix.stored))
            if seen not in self._reported:
                self._reported.add(seen)
                log.warning("topic.stored_setting_out_of_range", extra={
                    "topic": topic, "setting": fix.field, "stored": repr(fix.stored), "loaded": repr(fix.loaded),
                    "fix": "set it again (topic alter --config) to store a valid value"})
        return config

    def get(self, name: str) -> TopicMeta:
        try:
            return self.topics[name]
        except KeyError:
            raise TopicNotFound(f"topic {name!r} does not exist", topic=name) from None

    def partition_state(self, name: str, index: int) -> PartitionView | None:
        return MetadataView(self._state()).partition(name, index)
