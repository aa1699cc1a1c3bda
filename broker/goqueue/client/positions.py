"""Ordered consumers keep their read positions client-side, as a Kafka consumer does.

Why: the broker also keeps a read position per member, and moves it when it builds an answer; an answer lost on the
wire then leaves the member past records it never got (they came back only after a rebalance). A client that sends
its own positions (`ConsumeRequest.positions`) gets, for a consume sent again, the same records — so the client
may resend an ordered consume whose answer did not arrive, like a read.

Positions are kept per (group, member) for one generation: a rebalance may give a partition to another member and
back, so a new generation starts again from the committed offsets (at least once, never a skip). Pure state: no I/O,
used by the HTTP and gRPC clients alike.
"""

from __future__ import annotations

import threading

from goqueue.models import ConsumeRequest, ConsumeResponse, ReadPosition

TP = tuple[str, int]


class ReadPositions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], tuple[int | None, dict[TP, int]]] = {}

    def stamp(self, group: str, request: ConsumeRequest) -> ConsumeRequest:
        """The request with this client's positions for its member (an ordered consume), others unchanged."""
        if request.member_id is None or request.positions is not None:
            return request
        with self._lock:
            generation, held = self._held.get((group, request.member_id), (None, {}))
            if generation != request.generation:
                held = {}
            positions = [ReadPosition(topic=t, partition=p, offset=o) for (t, p), o in sorted(held.items())]
        return request.model_copy(update={"positions": positions})

    def advance(self, group: str, request: ConsumeRequest, response: ConsumeResponse) -> None:
        """Take the positions an answer returned (the next offset per partition it read)."""
        if request.member_id is None:
            return
        key = (group, request.member_id)
        with self._lock:
            generation, held = self._held.get(key, (None, {}))
            if generation != response.generation:
                held = {}
            held.update({(p.topic, p.partition): p.offset for p in response.positions})
            self._held[key] = (response.generation, held)

    def took(self, group: str, member_id: str, generation: int | None, topic: str, partition: int,
             next_offset: int) -> None:
        """One record handed to the caller (a stream's): its partition continues at `next_offset`."""
        key = (group, member_id)
        with self._lock:
            held_generation, held = self._held.get(key, (None, {}))
            if held_generation != generation:
                held = {}
            held[(topic, partition)] = next_offset
            self._held[key] = (generation, held)

    def forget(self, group: str, member_id: str) -> None:
        with self._lock:
            self._held.pop((group, member_id), None)
