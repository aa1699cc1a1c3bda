"""The partition leader's view of its followers: their progress, the high watermark, and ISR changes.

Pure functions over `FollowerProgress` records, so the rules are tested without a network:
* the high watermark is the smallest log end offset among in-sync replicas (the leader's own included), followers
  named by an ISR expansion not yet decided, and joining followers (below): a record below it is on every in-sync
  replica, which is what `acks=all` promises;
* a follower leaves the ISR when it has not caught up to the leader's log end within `lag_max_s`, and at once when
  it fetches from below the high watermark: it lost records every in-sync replica must hold (a replaced or damaged
  volume), so it must never be elected until it has them again. A fetch starting at or past the leader's log end
  when the follower's previous fetch was served shows it caught up as of that previous fetch (Kafka's rule): under
  steady load a follower is always a round behind the leader's very latest record, and stays in sync;
* it rejoins once a fetch *since it left* reaches the high watermark (progress from before it left, e.g. from
  before a restart that lost its data, never counts: the leader resets it when the follower leaves the ISR).
  That is judged at each fetch, not at the ISR tick (Kafka's rule): under steady load the high watermark has
  usually moved on since a follower's last fetch, so a snapshot at the tick could keep a follower one round behind
  out for good. From that fetch on the follower is *joining*: the high watermark counts it as if it were in the
  ISR, and once an expansion naming it is proposed, until the proposal is answered or this broker next applies
  metadata (Kafka's "maximal ISR"), so in the usual course it never passes the follower before the metadata lists
  it there. Not covered: a proposal whose answer was lost (a timeout, a metadata leader change) that commits
  later, after the follower lost its copy or was forgotten — the next tick then removes it from the ISR (it
  fetches from below the high watermark, or lags), as before this rule. A joining follower that stops fetching
  for `lag_max_s` stops joining (`forget_stale_joiners`), and the high watermark no longer waits for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass
class FollowerProgress:
    log_end_offset: int = 0
    last_fetch_s: float = 0.0
    last_caught_up_s: float = 0.0
    fetched: bool = False  # a real fetch recorded, not the placeholder a new leader starts its followers with
    joining: bool = False  # outside the ISR, its latest fetch reached the join offset: the high watermark waits for it
    leader_end_at_fetch: int = 0  # the leader's log end when its latest fetch was served


def record_fetch(progress: FollowerProgress, fetch_offset: int, leader_log_end: int, now_s: float,
                 join_offset: int | None) -> None:
    """A follower fetching from `fetch_offset` has everything below it. `join_offset`: for a replica outside the
    ISR, where it must have fetched from to join it (the high watermark, and no less than the leader's log end when
    it was elected); None for one that is in the ISR or may not join (not a replica)."""
    if fetch_offset >= leader_log_end:
        progress.last_caught_up_s = now_s
    elif progress.fetched and fetch_offset >= progress.leader_end_at_fetch:
        progress.last_caught_up_s = max(progress.last_caught_up_s, progress.last_fetch_s)  # as of its previous fetch
    progress.log_end_offset = fetch_offset
    progress.leader_end_at_fetch = leader_log_end
    progress.last_fetch_s = now_s
    progress.fetched = True
    progress.joining = join_offset is not None and fetch_offset >= join_offset


def high_watermark(leader_id: int, leader_log_end: int, isr: Sequence[int],
                   progress: Mapping[int, FollowerProgress]) -> int:
    """The smallest log end among in-sync replicas and joining followers."""
    ends = [leader_log_end if broker == leader_id else
            (progress[broker].log_end_offset if broker in progress else 0) for broker in isr]
    ends.extend(state.log_end_offset for state in progress.values() if state.joining)
    return min(ends) if ends else leader_log_end


def forget_stale_joiners(progress: Mapping[int, FollowerProgress], now_s: float, lag_max_s: float) -> bool:
    """A joining follower that has not fetched for `lag_max_s` (stopped, cut off) stops holding the high watermark
    back; a fetch reaching the join offset again makes it join again. True when one was forgotten."""
    forgotten = False
    for state in progress.values():
        if state.joining and now_s - state.last_fetch_s > lag_max_s:
            state.joining, forgotten = False, True
    return forgotten


def next_isr(leader_id: int, isr: Sequence[int], replicas: Sequence[int], progress: Mapping[int, FollowerProgress],
             hwm: int, now_s: float, lag_max_s: float) -> list[int] | None:
    """The ISR the leader should propose, or None when it should stay as it is."""
    proposed = [leader_id]
    for broker in replicas:
        if broker == leader_id:
            continue
        state = progress.get(broker)
        if broker in isr:
            lost_records = state is not None and state.fetched and state.log_end_offset < hwm
            if state is not None and now_s - state.last_caught_up_s <= lag_max_s and not lost_records:
                proposed.append(broker)
        elif state is not None and state.joining and now_s - state.last_fetch_s <= lag_max_s:
            proposed.append(broker)
    ordered = [b for b in replicas if b in proposed]
    return None if sorted(ordered) == sorted(isr) else ordered
