"""No code runs from the Raft port (issue 15, item 2).

PySyncObj frames are a 4-byte length and a zlib-compressed pickle. An anonymous peer sent a pickle whose
`__reduce__` calls a function — before, the broker ran it (the issue's `id` as the broker's user). Here the payload
would create a marker file: the broker must drop the connection and the file must never appear, on a single broker
(no password: the quick start) and on a member of a password-protected cluster; the broker keeps serving.
"""

from __future__ import annotations

import pickle
import socket
import struct
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from broker_process import BrokerFactory, BrokerProcess
from cluster_process import LocalCluster

pytestmark = pytest.mark.integration


class CreatesAFile:
    """Unpickling this calls open(path, "w"): any call would do; this one leaves evidence."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (str(self.path), "w")


def send_payload(host: str, port: int, payload: object) -> bool:
    """One PySyncObj frame holding `payload`; True when the broker then closed the connection."""
    data = zlib.compress(pickle.dumps(payload, protocol=2))
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(struct.pack("i", len(data)) + data)
        try:
            return conn.recv(1) == b""
        except TimeoutError:
            return False


def assert_no_code_ran(broker: BrokerProcess, marker: Path) -> None:
    closed = send_payload(broker.host, broker.raft_port, CreatesAFile(marker))
    assert not marker.exists(), "the Raft port ran code sent by an anonymous peer"
    # The broker read the frame (and refused it): it dropped the connection rather than waiting for more.
    assert closed, "the broker kept the connection of a peer that sent a pickled call"
    with httpx.Client(base_url=broker.url, timeout=10) as http:
        assert http.get("/readyz").status_code == 200
        assert http.post("/v1/topics", json={"name": "after", "partitions": 1}).status_code == 201
    assert "Traceback" not in broker.log_text(), broker.log_text()[-2000:]


def test_a_single_broker_runs_no_pickled_code(broker_factory: BrokerFactory, tmp_path: Path) -> None:
    assert_no_code_ran(broker_factory(), tmp_path / "pwned-single")


def test_a_cluster_member_runs_no_pickled_code(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster").start()
    try:
        marker = tmp_path / "pwned-member"
        assert_no_code_ran(cluster.brokers[1], marker)
    finally:
        for broker in cluster.brokers:
            broker.stop()
