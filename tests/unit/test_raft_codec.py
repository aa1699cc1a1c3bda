"""The Raft codec reads plain data and refuses anything that names a class or a function (raft_codec.py)."""

from __future__ import annotations

import os
import pickle

import pytest

from goqueue.replication import raft_codec

pytestmark = pytest.mark.unit


def test_plain_data_of_every_kind_round_trips_as_pysyncobj_writes_it() -> None:
    command = (3, ({"op": "create_topic", "name": "t", "partitions": 2, "config": {"retention": 1.5, "x": None},
                    "assignment": [[0, 1], [1, 2]], "flags": {True, False}, "frozen": frozenset({1}),
                    "raw": b"\x00\xff", "empty": b""},), {})
    assert raft_codec.loads(raft_codec.CODEC.dumps(command)) == command


class Calls:
    def __reduce__(self) -> tuple[object, tuple[int]]:
        return os.getpid, ()  # type: ignore[return-value]


@pytest.mark.parametrize("payload", [Calls(), pickle.dumps(Calls(), protocol=2)], ids=["reduce", "nested-bytes"])
def test_anything_that_names_a_function_is_refused(payload: object) -> None:
    data = pickle.dumps(payload, protocol=2)
    if isinstance(payload, bytes):  # bytes holding a pickle stay bytes: only a second, explicit load would run them
        assert raft_codec.loads(data) == payload
        with pytest.raises(raft_codec.RefusedPickle, match=r"posix\.getpid"):
            raft_codec.loads(payload)
        return
    with pytest.raises(raft_codec.RefusedPickle, match=r"posix\.getpid"):
        raft_codec.loads(data)


def test_install_points_pysyncobj_at_the_codec() -> None:
    import pysyncobj.serializer
    import pysyncobj.syncobj
    import pysyncobj.tcp_connection

    raft_codec.install()
    assert pysyncobj.tcp_connection.pickle is raft_codec.CODEC  # type: ignore[attr-defined]
    assert pysyncobj.syncobj.pickle is raft_codec.CODEC  # type: ignore[attr-defined]
    assert pysyncobj.serializer.pickle is raft_codec.CODEC  # type: ignore[attr-defined]


def test_a_snapshot_file_that_names_a_function_is_refused() -> None:
    """What a peer claiming leadership could send as a snapshot, and what the serializer loads from disk."""
    import io

    good = io.BytesIO()
    raft_codec.CODEC.dump({"topics": {}, "applied": 3}, good)
    good.seek(0)
    assert raft_codec.CODEC.load(good) == {"topics": {}, "applied": 3}
    with pytest.raises(raft_codec.RefusedPickle):
        raft_codec.CODEC.load(io.BytesIO(pickle.dumps(Calls(), protocol=2)))


def test_a_full_dump_as_pysyncobj_writes_it_loads_with_its_cluster_nodes() -> None:
    """raft.dump (and a leader's snapshot) is (attributes, last applied entry, the one before, the cluster's nodes):
    refusing the nodes lost the whole dump, so a broker restarted without the metadata it had compacted."""
    import gzip
    import io

    from pysyncobj.node import TCPNode

    nodes = {TCPNode("10.0.0.1:7000"), TCPNode("10.0.0.2:7000")}
    dump = ({"metadata": {"topics": {}, "applied": 7}}, (b"\x00entry", 9, 2), (b"\x00entry", 8, 2), nodes)
    written = io.BytesIO()
    with gzip.GzipFile(fileobj=written, mode="wb") as file:
        raft_codec.CODEC.dump(dump, file)
    with gzip.GzipFile(fileobj=io.BytesIO(written.getvalue())) as file:
        loaded = raft_codec.CODEC.load(file)
    assert loaded[:3] == dump[:3]
    assert {node.address for node in loaded[3]} == {"10.0.0.1:7000", "10.0.0.2:7000"}


def test_empty_bytes_load_and_no_other_call_of_bytes_does() -> None:
    """b"" is `bytes()` in protocol 2 (the last chunk of every snapshot); bytes(n) would allocate n zeros."""
    assert raft_codec.loads(pickle.dumps({"serialized": (b"", False, True)}, protocol=2)) == {
        "serialized": (b"", False, True)}
    allocates = b"\x80\x02c__builtin__\nbytes\nJ\x00\xca\x9a;\x85R."  # bytes(10**9)
    with pytest.raises(raft_codec.RefusedPickle, match="bytes"):
        raft_codec.loads(allocates)
