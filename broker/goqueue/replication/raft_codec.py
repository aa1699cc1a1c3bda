"""What the Raft port may unpickle: plain data only, never an object that runs code.

PySyncObj's wire format and log entries are pickles: `pickle.loads` of bytes from an anonymous peer ran any code
the peer chose (issue 15: a pickled `os.system` sent to port 7000 ran `id` as the broker's user). A password
(Fernet: authenticated encryption) keeps strangers out of a cluster, but a single broker runs without one, and a
stolen password must not mean code execution either. So every pickle PySyncObj reads from the network or applies
from its log goes through `PlainDataUnpickler`: dicts, lists, tuples, strings, bytes, numbers, booleans and None —
what GoQueue's metadata commands and PySyncObj's own messages are made of — and nothing that names a class or a
function, except the harmless globals protocol 2 uses for sets and bytes (b"" as `bytes()`, and nothing but that),
and PySyncObj's `TCPNode`: a full
dump (`raft.dump`, and the snapshot a leader sends a follower that fell behind) ends with the cluster's nodes, and
refusing them failed the whole dump. Every broker compacts its log into one five minutes after it starts, so a
cluster restarted after that never became ready again (tests/integration/test_upgrade_metadata.py, fixture `clean`).
A node is inert: unpickling makes it with `object.__new__` and sets its attributes as data (it defines no
`__setstate__` or `__reduce__` to run).
Anything else is refused, and the connection that sent it is dropped (PySyncObj closes a connection whose message
does not parse).

`install()` points PySyncObj's transport and state machine at this codec; writing is unchanged (same format), so
brokers with and without it interoperate and existing journals replay.
"""

from __future__ import annotations

import io
import pickle
import types
from typing import IO, Any

import pysyncobj.pickle as pysyncobj_pickle
import pysyncobj.serializer
import pysyncobj.syncobj
import pysyncobj.tcp_connection

# Protocol 2 pickles bytes as _codecs.encode(text, "latin1") and sets as set/frozenset(list), naming the module
# __builtin__ (Python 2's name, which the unpickler maps to builtins after this check); a dump's nodes are TCPNodes.
PLAIN_GLOBALS = frozenset({("_codecs", "encode"), ("__builtin__", "set"), ("__builtin__", "frozenset"),
                           ("builtins", "set"), ("builtins", "frozenset"),
                           ("pysyncobj.node", "TCPNode")})


class RefusedPickle(pickle.UnpicklingError):
    """A Raft message or log entry named a class or function: it is not plain data."""


def empty_bytes(*args: object) -> bytes:
    """Protocol 2 writes b"" as a call of `bytes()`: the only call of it allowed, since bytes(n) allocates n zeros
    from a few bytes of pickle. (The last chunk of every snapshot a leader sends is b"": refusing it dropped the
    connection, so a follower behind the compacted log never caught up.)"""
    if args:
        raise RefusedPickle("refused bytes() with arguments: protocol 2 calls it only for b\"\"")
    return b""


EMPTY_BYTES_GLOBALS = frozenset({("__builtin__", "bytes"), ("builtins", "bytes")})


class PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in PLAIN_GLOBALS:
            return super().find_class(module, name)
        if (module, name) in EMPTY_BYTES_GLOBALS:
            return empty_bytes
        raise RefusedPickle(f"refused {module}.{name}: Raft messages carry plain data only")


def loads(data: bytes | str) -> Any:
    return PlainDataUnpickler(io.BytesIO(pysyncobj_pickle.to_bytes(data))).load()


def load(file: IO[bytes]) -> Any:
    return PlainDataUnpickler(file).load()


# PySyncObj's modules call `pickle.dumps` / `loads` / `dump` / `load` on the `pysyncobj.pickle` module they imported:
# the same names, with reading restricted.
CODEC = types.SimpleNamespace(dumps=pysyncobj_pickle.dumps, loads=loads, dump=pysyncobj_pickle.dump, load=load,
                              to_bytes=pysyncobj_pickle.to_bytes)


def install() -> None:
    """Idempotent; called before the first SyncObj is made. The serializer too: a snapshot a leader sends in
    append_entries is unpickled by it (a peer claiming leadership could send one), and so is the local dump."""
    pysyncobj.tcp_connection.pickle = CODEC
    pysyncobj.syncobj.pickle = CODEC
    pysyncobj.serializer.pickle = CODEC
