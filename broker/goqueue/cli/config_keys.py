"""Topic setting keys: one spelling printed, every spelling people bring accepted.

The spelling of record is the GoQueueTopic CRD's `spec.config` (camelCase: `retentionMaxAge`), which is also the
HTTP API's and what `-o json`/`-o yaml` print. `topic alter --config` and `topic create --config` also take:
- the same words with dots, dashes or underscores, any case (`retention.maxAge` as the broker settings write it,
  `retention-max-age`, `RETENTION_MAX_AGE`);
- Kafka's topic configs (`retention.ms`, `retention.bytes`, `cleanup.policy`, `max.message.bytes`,
  `min.insync.replicas`, `segment.bytes`, `unclean.leader.election.enable`, `delete.retention.ms`), whose `.ms`
  values are milliseconds as in Kafka (`retention.ms=86400000` is one day), given to the broker as `86400000ms`.
An unknown key is a usage error that lists the keys.
"""

from __future__ import annotations

import re

TOPIC_KEYS = ("cleanupPolicy", "retentionMaxAge", "retentionMaxSize", "maxMessageBytes", "minInsyncReplicas",
              "tombstoneRetention", "segmentBytes", "uncleanLeaderElection")

# Kafka topic config → (our key, whether its value is in milliseconds)
KAFKA_KEYS: dict[str, tuple[str, bool]] = {
    "retention.ms": ("retentionMaxAge", True), "retention.bytes": ("retentionMaxSize", False),
    "cleanup.policy": ("cleanupPolicy", False), "max.message.bytes": ("maxMessageBytes", False),
    "min.insync.replicas": ("minInsyncReplicas", False), "segment.bytes": ("segmentBytes", False),
    "unclean.leader.election.enable": ("uncleanLeaderElection", False),
    "delete.retention.ms": ("tombstoneRetention", True)}

_FOLDED = {key.lower(): key for key in TOPIC_KEYS}


class UnknownConfigKey(ValueError):
    """A --config key no spelling of ours or Kafka's names."""


def canonical_setting(key: str, value: str) -> tuple[str, str]:
    """(CRD key, value) for one `key=value` as typed; raises `UnknownConfigKey`."""
    kafka = KAFKA_KEYS.get(key.lower())
    if kafka is not None:
        name, milliseconds = kafka
        return name, f"{value}ms" if milliseconds and value.strip().isdigit() else value
    folded = _FOLDED.get(re.sub(r"[._\-]", "", key).lower())
    if folded is None:
        raise UnknownConfigKey(f"unknown setting {key!r}: use one of {', '.join(TOPIC_KEYS)} (or Kafka's "
                               f"{', '.join(KAFKA_KEYS)})")
    return folded, value
