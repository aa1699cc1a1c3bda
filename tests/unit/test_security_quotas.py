"""Byte-rate quotas: the bucket's arithmetic on a fake clock, the per-principal throttle, and the metadata command
that stores a user's quotas with its credential."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from goqueue.metrics import QuotaMetrics
from goqueue.replication import commands
from goqueue.replication.metadata import MetadataConflict, apply_command
from goqueue.replication.state import MetadataState, UserEntry, empty_state
from goqueue.security.principal import ANONYMOUS, user
from goqueue.security.quotas import MAX_THROTTLE_S, ByteRateBucket, ByteRateQuotas, Direction, current_principal

pytestmark = pytest.mark.unit

CREDENTIAL: UserEntry = {"salt": b"s" * 16, "iterations": 4096, "stored_key": b"k" * 64, "server_key": b"k" * 64}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_starts_with_one_second_of_credit_then_delays_by_the_debt() -> None:
    clock = FakeClock()
    bucket = ByteRateBucket(1000, clock)
    assert bucket.spend(1000) == 0.0  # the burst allowance
    assert bucket.spend(500) == pytest.approx(0.5)  # 500 bytes owed at 1000 B/s
    clock.now += 0.5
    assert bucket.spend(0) == pytest.approx(0.0)  # repaid
    assert bucket.spend(2000) == pytest.approx(2.0)


def test_idle_time_earns_at_most_one_second_of_credit() -> None:
    clock = FakeClock()
    bucket = ByteRateBucket(1000, clock)
    clock.now += 3600
    assert bucket.spend(1000) == 0.0
    assert bucket.spend(1000) == pytest.approx(1.0)


def test_the_delay_is_capped_and_the_debt_past_the_cap_stays_owed() -> None:
    clock = FakeClock()
    bucket = ByteRateBucket(100, clock)
    assert bucket.spend(100 + 100 * 20) == MAX_THROTTLE_S  # 20 s owed, 5 s waited
    clock.now += MAX_THROTTLE_S
    assert bucket.spend(0) == pytest.approx(MAX_THROTTLE_S)  # 15 s still owed: the next answer waits too


def test_a_lower_rate_takes_away_credit_above_its_burst() -> None:
    clock = FakeClock()
    bucket = ByteRateBucket(10_000, clock)
    bucket.set_rate(100)
    assert bucket.spend(200) == pytest.approx(1.0)


def test_over_a_long_run_the_throughput_converges_to_the_rate() -> None:
    clock = FakeClock()
    bucket = ByteRateBucket(1000, clock)
    sent = 0
    start = clock.now
    for _ in range(1000):
        sent += 300
        clock.now += 0.001 + bucket.spend(300)  # a client waiting for each answer before the next request
    assert sent / (clock.now - start) == pytest.approx(1000, rel=0.02)


def quotas(rates: dict[tuple[str, Direction], int]) -> tuple[ByteRateQuotas, QuotaMetrics, FakeClock]:
    clock = FakeClock()
    metrics = QuotaMetrics(CollectorRegistry())
    return ByteRateQuotas(lambda name, direction: rates.get((name, direction)), metrics, clock), metrics, clock


def test_only_a_principal_with_a_quota_in_that_direction_is_held_back() -> None:
    limiter, metrics, _ = quotas({("alice", Direction.PRODUCE): 1000})
    assert limiter.delay_s(user("alice"), Direction.PRODUCE, 3000) == pytest.approx(2.0)
    assert limiter.delay_s(user("alice"), Direction.CONSUME, 10**9) == 0.0
    assert limiter.delay_s(user("bob"), Direction.PRODUCE, 10**9) == 0.0
    assert limiter.delay_s(ANONYMOUS, Direction.PRODUCE, 10**9) == 0.0
    assert limiter.delay_s(None, Direction.PRODUCE, 10**9) == 0.0  # forwarded by another broker: not counted here
    assert metrics.throttle.labels("produce")._value.get() == pytest.approx(2.0)
    assert user_seconds(metrics, "alice", "produce") == pytest.approx(2.0)


def user_seconds(metrics: QuotaMetrics, name: str, direction: str) -> float | None:
    return metrics.registry.get_sample_value("goqueue_quota_user_throttle_seconds_total",
                                             {"user": name, "direction": direction})


def test_a_quota_removed_frees_the_bucket_and_its_series_and_a_new_one_starts_afresh() -> None:
    rates = {("alice", Direction.CONSUME): 1000}
    limiter, metrics, _ = quotas(rates)
    assert limiter.delay_s(user("alice"), Direction.CONSUME, 3000) == pytest.approx(2.0)
    assert user_seconds(metrics, "alice", "consume") == pytest.approx(2.0)
    del rates[("alice", Direction.CONSUME)]  # the quota, or the user, deleted
    assert user_seconds(metrics, "alice", "consume") is None  # at the next scrape, without another request
    assert metrics.throttle.labels("consume")._value.get() == pytest.approx(2.0)  # the total keeps it
    assert limiter.delay_s(user("alice"), Direction.CONSUME, 3000) == 0.0
    rates[("alice", Direction.CONSUME)] = 1000
    assert limiter.delay_s(user("alice"), Direction.CONSUME, 1000) == 0.0


def test_throttle_waits_for_the_request_principal() -> None:
    limiter, _, _ = quotas({("alice", Direction.PRODUCE): 1_000_000})

    async def produce_as_alice() -> float:
        current_principal.set(user("alice"))
        started = asyncio.get_running_loop().time()
        await limiter.throttle(Direction.PRODUCE, 1_000_000 + 50_000)  # 50 ms over the burst
        return asyncio.get_running_loop().time() - started

    assert asyncio.run(produce_as_alice()) >= 0.04


def with_alice() -> MetadataState:
    state = empty_state()
    apply_command(state, commands.upsert_user("alice", CREDENTIAL))
    return state


def test_quotas_are_stored_with_the_user_and_survive_a_new_password() -> None:
    state = with_alice()
    apply_command(state, commands.set_user_quotas("alice", producer_byte_rate=1024, consumer_byte_rate=None))
    assert state["users"]["alice"]["quotas"] == {"producer_byte_rate": 1024}
    apply_command(state, commands.upsert_user("alice", {**CREDENTIAL, "salt": b"t" * 16}))
    assert state["users"]["alice"]["quotas"] == {"producer_byte_rate": 1024}
    apply_command(state, commands.set_user_quotas("alice", producer_byte_rate=None, consumer_byte_rate=None))
    assert "quotas" not in state["users"]["alice"]


def test_quotas_of_an_unknown_user_are_refused_and_change_nothing() -> None:
    state = with_alice()
    with pytest.raises(MetadataConflict, match="'bob' does not exist"):
        apply_command(state, commands.set_user_quotas("bob", producer_byte_rate=1, consumer_byte_rate=1))
    assert set(state["users"]) == {"alice"}


def test_deleting_a_user_deletes_its_quotas() -> None:
    state = with_alice()
    apply_command(state, commands.set_user_quotas("alice", producer_byte_rate=1, consumer_byte_rate=2))
    apply_command(state, commands.delete_user("alice"))
    apply_command(state, commands.upsert_user("alice", CREDENTIAL))
    assert "quotas" not in state["users"]["alice"]
