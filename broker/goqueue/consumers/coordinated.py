"""`CoordinatedGroups`: the groups this broker coordinates now, and the state partitions they come from.

The one table every part of the coordinator shares, with the checks that guard it: `owned` holds the
`__consumer_state` partitions this broker leads (LOADING or ACTIVE at a leader epoch, see `ownership.py`; changed
only by `loading.py`), `groups` the groups of the ACTIVE ones. A request about a group first asks `check_owner`,
which answers with the leader epoch its writes are fenced at, or refuses with a retriable NOT_COORDINATOR (the group
is coordinated elsewhere) or NOT_READY (loading here, or the coordinator is not started). `changed` is the event
every long-poll waits on: `notify` sets it whenever something such a poll may wait for changed (an ack, an expiry,
a resume, a rebalance, groups installed or dropped).

Pure in-memory state on the event loop; it knows the placement of groups (`partition_for`) and who leads the state
partitions (`state_leaders`) only through the callables it is given.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping

from goqueue.consumers.groups import Group
from goqueue.consumers.ownership import LoadState, OwnedPartition
from goqueue.consumers.port import Leadership
from goqueue.consumers.state_store import STATE_TOPIC, Changes
from goqueue.errors import GroupNotFound, InvalidRequest, NotCoordinator, NotReady, Overloaded
from goqueue.models import GROUP_NAME_PATTERN, GroupConfig, GroupMode

log = logging.getLogger(__name__)

_GROUP_NAME = re.compile(GROUP_NAME_PATTERN)


class CoordinatedGroups:
    def __init__(self, self_id: int, max_groups: int, partition_for: Callable[[str], int],
                 state_leaders: Callable[[], Mapping[int, Leadership]]) -> None:
        self.self_id = self_id
        self.max_groups = max_groups
        self.partition_for = partition_for
        self._state_leaders = state_leaders
        self.groups: dict[str, Group] = {}
        self.owned: dict[int, OwnedPartition] = {}
        self.ready = False  # started and not stopping: requests are served
        self._changed = asyncio.Event()

    # -- wake-ups --------------------------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake every long-polling consume: something it may be waiting for changed."""
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def changed(self) -> asyncio.Event:
        return self._changed

    # -- checks ----------------------------------------------------------------------------------------------

    def check_ready(self) -> None:
        if not self.ready:
            raise NotReady("consumer groups are loading their state, or the broker is shutting down")

    def check_partition(self, index: int) -> OwnedPartition:
        """The state partition, when this broker coordinates its groups now; else a retriable error saying why."""
        owned = self.owned.get(index)
        if owned is None:
            raise NotCoordinator(f"this broker does not lead {STATE_TOPIC}/{index}: it does not coordinate the "
                                 "group; retry (any broker forwards the request to the coordinator)")
        if owned.state is LoadState.LOADING:
            raise NotReady(f"this broker is loading the consumer groups of {STATE_TOPIC}/{index}; retry shortly")
        return owned

    def check_owner(self, name: str) -> int:
        """The leader epoch of the group's state partition when this broker coordinates it; else NOT_COORDINATOR
        (retriable: it is coordinated elsewhere) or NOT_READY (this broker is loading it)."""
        self.check_ready()
        return self.check_partition(self.partition_for(name)).leader_epoch

    def owns(self, group: Group) -> bool:
        """`group` is still the live object of a group this broker coordinates (not dropped, not replaced)."""
        return self.groups.get(group.name) is group

    def group(self, name: str) -> Group:
        """The group, coordinated here; GROUP_NOT_FOUND when it does not exist."""
        self.check_owner(name)
        group = self.groups.get(name)
        if group is None:
            raise GroupNotFound(f"consumer group {name!r} does not exist", group=name)
        return group

    def create(self, name: str, mode: GroupMode, config: GroupConfig | None = None) -> Group:
        """A new group (the caller checked ownership and persists it); refuses a bad name and a full table."""
        if not _GROUP_NAME.match(name) or name in {".", ".."}:
            raise InvalidRequest(f"invalid group name {name!r}: 1-249 characters of letters, digits, '.', '_', '-'")
        if len(self.groups) >= self.max_groups:
            raise Overloaded(f"this broker holds consumers.maxGroups={self.max_groups} groups")
        group = self.groups[name] = Group(name=name, mode=mode, config=config or GroupConfig())
        log.info("group.created", extra={"group": name, "mode": mode.value})
        return group

    def get_or_create(self, name: str, mode: GroupMode, changes: Changes) -> Group:
        """The group, created with default settings on first use (recorded in `changes`)."""
        self.check_owner(name)
        group = self.groups.get(name)
        if group is None:
            group = self.create(name, mode)
            changes.group = True
        return group

    # -- what loading changes --------------------------------------------------------------------------------

    def install(self, groups: Mapping[str, Group]) -> None:
        """A state partition finished loading: its groups are served from now on."""
        self.groups.update(groups)
        self.notify()

    def drop(self, index: int) -> int:
        """This broker stopped leading a state partition: forget its groups (waiting long-polls wake and answer
        NOT_COORDINATOR); returns how many were dropped."""
        names = [name for name in self.groups if self.partition_for(name) == index]
        for name in names:
            del self.groups[name]
        self.notify()
        return len(names)

    # -- cluster-wide read-outs ------------------------------------------------------------------------------

    def coordinated_names(self) -> list[str]:
        """Names of the groups this broker coordinates, for a cluster-wide read-out; NOT_READY while a state
        partition it leads (in the metadata) is not loaded yet, so a read-out never silently misses groups."""
        self.check_ready()
        led: set[int] = set()
        for index, leadership in self._state_leaders().items():
            if leadership.leader == self.self_id:
                owned = self.check_partition(index)
                if owned.leader_epoch != leadership.leader_epoch:
                    raise NotReady(f"{STATE_TOPIC}/{index} is changing leader epoch here; retry")
                led.add(index)
        # Groups of a partition whose leadership just moved away (not dropped yet) belong to the new leader's part.
        return sorted(name for name in self.groups if self.partition_for(name) in led)
