"""Settings: runbook defaults, the one env rule, file + env precedence, and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from goqueue.config import (
    ConfigError,
    FsyncPolicy,
    Settings,
    all_keys,
    env_var_for,
    load_settings,
    parse_duration_s,
    parse_size_bytes,
)

pytestmark = pytest.mark.unit


def test_defaults_are_the_runbooks() -> None:
    settings = load_settings(None, {})
    assert settings.broker.port == 8080
    assert settings.broker.grpc_port == 9000
    assert settings.broker.raft_port == 7000
    assert settings.broker.host == "0.0.0.0"
    assert settings.storage.data_dir == Path("/data")
    assert settings.storage.wal_dir == Path("/data/wal")
    assert settings.retention.max_age_s == 168 * 3600
    assert settings.retention.max_size_bytes == 10 * 10**9
    assert settings.storage.fsync is FsyncPolicy.ALWAYS


@pytest.mark.parametrize(("key", "var"), [
    ("broker.port", "GOQUEUE_BROKER_PORT"),
    ("storage.dataDir", "GOQUEUE_STORAGE_DATADIR"),
    ("broker.host", "GOQUEUE_BROKER_HOST"),
    ("broker.grpcPort", "GOQUEUE_BROKER_GRPCPORT"),
])
def test_env_rule(key: str, var: str) -> None:
    assert env_var_for(key) == var


def test_every_key_is_settable_from_the_environment() -> None:
    keys = all_keys()
    assert "retention.maxAge" in keys
    assert "cluster.peers" in keys
    values = {"broker.port": "18080", "storage.dataDir": "/tmp/x", "retention.maxAge": "2h",
              "cluster.peers": "a:7000, b:7000", "storage.fsync": "never", "cluster.password": "pw",
              "broker.id": "1"}
    settings = load_settings(None, {env_var_for(k): v for k, v in values.items()})
    assert settings.broker.port == 18080
    assert settings.storage.data_dir == Path("/tmp/x")
    assert settings.retention.max_age_s == 7200
    assert settings.cluster.peers == ["a:7000", "b:7000"]
    assert settings.storage.fsync is FsyncPolicy.NEVER


def test_environment_wins_over_file(tmp_path: Path) -> None:
    config = tmp_path / "goqueue.yaml"
    config.write_text("broker:\n  port: 8081\n  grpcPort: 9001\nretention:\n  maxSize: 5GB\n")
    settings = load_settings(config, {"GOQUEUE_BROKER_PORT": "8082"})
    assert settings.broker.port == 8082
    assert settings.broker.grpc_port == 9001
    assert settings.retention.max_size_bytes == 5 * 10**9


@pytest.mark.parametrize(("text", "seconds"), [("250ms", 0.25), ("30s", 30), ("5m", 300), ("168h", 604800),
                                               ("7d", 604800), (12, 12), ("1.5h", 5400)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize(("text", "size"), [("10GB", 10**10), ("512MiB", 512 * 2**20), ("100Gi", 100 * 2**30),
                                            (4096, 4096), ("1kb", 1000)])
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size_bytes(text) == size


@pytest.mark.parametrize(("env", "fragment"), [
    ({"GOQUEUE_BROKER_PORT": "eighty"}, "broker.port"),
    ({"GOQUEUE_BROKER_PORT": "70000"}, "broker.port"),
    ({"GOQUEUE_RETENTION_MAXAGE": "forever"}, "retention.maxAge"),
    ({"GOQUEUE_RETENTION_MAXSIZE": "10 parsecs"}, "retention.maxSize"),
    ({"GOQUEUE_STORAGE_FSYNC": "sometimes"}, "storage.fsync"),
    ({"GOQUEUE_BROKER_GRPCPORT": "8080"}, "must differ"),
    ({"GOQUEUE_BROKER_INTERNALPORT": "7000"}, "must differ"),
    ({"GOQUEUE_BROKER_INTERNALPORT": "0"}, "broker.internalPort"),
    ({"GOQUEUE_CLUSTER_PEERS": "a:7000,b:7000", "GOQUEUE_BROKER_ID": "0"}, "cluster.password is required"),
    ({"GOQUEUE_CLUSTER_PEERS": "a:7000,b:7000", "GOQUEUE_BROKER_ID": "2", "GOQUEUE_CLUSTER_PASSWORD": "x"},
     "has no entry in cluster.peers"),
    ({"GOQUEUE_CLUSTER_PEERS": "a-without-port"}, "is not host:raftPort"),
])
def test_invalid_values_name_the_key(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    if len(env) == 1 and "must differ" not in fragment and "host:raftPort" not in fragment:
        assert next(iter(env)) in message  # says which variable it came from


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "goqueue.yaml"
    config.write_text("storage:\n  dataDirectory: /x\n")
    with pytest.raises(ConfigError, match=r"storage\.dataDirectory: unknown setting; known keys: storage\.dataDir"):
        load_settings(config, {})


def test_malformed_yaml_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "goqueue.yaml"
    config.write_text("broker: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config, {})
    assert "not valid YAML" in str(info.value)
    assert "\n" not in str(info.value)


def test_broker_id_from_explicit_setting() -> None:
    assert Settings.model_validate({"broker": {"id": 3}}).broker_id() == 3


def test_raft_addresses_pick_this_brokers_entry_by_id() -> None:
    settings = load_settings(None, {"GOQUEUE_CLUSTER_PEERS": "g-0.h:7000,g-1.h:7000,g-2.h:7000",
                                    "GOQUEUE_BROKER_ID": "1", "GOQUEUE_CLUSTER_PASSWORD": "pw"})
    assert settings.raft_addresses() == ("g-1.h:7000", ["g-0.h:7000", "g-2.h:7000"])
    assert settings.advertised_host() == "g-1.h"
    alone = load_settings(None, {"GOQUEUE_BROKER_HOST": "127.0.0.5"})
    assert alone.raft_addresses() == ("127.0.0.5:7000", [])
