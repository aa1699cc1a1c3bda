"""The reassignment throttle: bytes fetched for added replicas, counted over a controlled clock."""

from __future__ import annotations

import pytest

from goqueue.replicas.throttle import ThrottleBucket, copy_is_throttled, fetchable

pytestmark = pytest.mark.unit

MIB = 2**20


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def copy_for(seconds: float, rate: int | None, fetch_bytes: int) -> tuple[int, int]:
    """A follower copying an added replica from a leader that always has `fetch_bytes` more to give, and a second
    partition (not being added) alongside; each fetch takes 10 ms. Returns (added bytes, other bytes) fetched."""
    clock = Clock()
    bucket = ThrottleBucket(clock)
    bucket.set_rate(rate)
    added = other = 0
    for step in range(round(seconds * 100)):
        clock.now = step / 100
        asked = fetchable(["added", "other"], lambda p: p == "added", bucket)
        if "added" in asked:
            added += fetch_bytes
            bucket.spend(fetch_bytes)
        other += fetch_bytes
    return added, other


def test_added_replicas_copy_at_the_throttle_on_average() -> None:
    added, _ = copy_for(60.0, 1 * MIB, fetch_bytes=256 * 1024)
    assert added <= 60 * MIB + 256 * 1024
    assert added >= 55 * MIB  # the 10 ms steps round each wait up


def test_a_fetch_larger_than_a_second_of_throttle_is_repaid_before_the_next() -> None:
    added, _ = copy_for(10.0, 1 * MIB, fetch_bytes=4 * MIB)
    assert added <= 10 * MIB + 4 * MIB


def test_other_replicas_and_unthrottled_copies_are_never_held_back() -> None:
    throttled_added, throttled_other = copy_for(10.0, 1 * MIB, fetch_bytes=MIB)
    free_added, free_other = copy_for(10.0, None, fetch_bytes=MIB)
    assert throttled_other == free_other == free_added == 1000 * MIB
    assert throttled_added < free_added


def test_idle_time_earns_no_burst() -> None:
    clock = Clock()
    bucket = ThrottleBucket(clock)
    bucket.set_rate(MIB)
    clock.now = 3600.0
    bucket.spend(MIB)
    assert not bucket.allows()
    assert bucket.wait_s() == pytest.approx(1.0)
    clock.now += 1.0
    assert bucket.allows()
    bucket.set_rate(None)
    bucket.spend(10 * MIB)
    assert bucket.allows()
    assert bucket.wait_s() == 0.0


def test_only_a_new_replica_still_copying_is_throttled() -> None:
    """Once a new replica is in the ISR every acks=all write waits for it: throttling it then would slow every
    producer to the throttle and drop it from the ISR again."""
    moving: dict[str, object] = {"replicas": [0, 1, 2], "leader": 0, "leader_epoch": 0, "isr": [0, 1], "version": 1,
                                 "target_replicas": [0, 2], "adding_replicas": [2], "removing_replicas": [1]}
    assert copy_is_throttled(moving, 2)  # type: ignore[arg-type]
    assert not copy_is_throttled(moving, 1)  # type: ignore[arg-type]  # an original replica
    assert not copy_is_throttled({**moving, "isr": [0, 1, 2]}, 2)  # type: ignore[arg-type]  # caught up
    assert not copy_is_throttled(None, 2)

