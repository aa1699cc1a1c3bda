"""This broker's membership in the cluster: the metadata Raft group, liveness, and the controller.

`ClusterMembership` owns:
* `raft` — PySyncObj metadata (`replication/raft.py`); a single broker is a one-member group;
* proposals (`propose`, `propose_retrying`, `propose_quietly`) and the metadata state they change;
* liveness: which brokers are connected to the quorum (`alive_brokers`), who leads it;
* the controller loop (only while this broker is the Raft leader): elects partition leaders for dead brokers,
  restores preferred leaders, advances replica reassignments (`replication/controller.py`);
* registration of this broker's addresses and data volume in the metadata.

Metadata changes applied by Raft (in PySyncObj's thread) are handed to the event loop and announced through the
`on_applied` callback it is built with — it imports neither the broker nor its replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from goqueue.config import Settings
from goqueue.errors import GoQueueError, NotLeader, NotReady
from goqueue.replication import commands
from goqueue.replication.commands import Command
from goqueue.replication.controller import plan_leadership, plan_reassignments
from goqueue.replication.metadata import CommandResult, MetadataConflict
from goqueue.replication.peers import PeerClient
from goqueue.replication.raft import PROPOSE_TIMEOUT_S, MetadataFactory, MetadataGroup, RaftMetadata
from goqueue.replication.view import MetadataView, StateView
from goqueue.security.broker_credential import BrokerSigner

log = logging.getLogger(__name__)

CONTROLLER_TICK_S = 0.25
# Commands the previous release (5ee38ad, before the internal listener) does not know; see `propose`.
UNKNOWN_TO_PREVIOUS_VERSION = frozenset({
    "begin_reassignment", "complete_reassignment", "cancel_reassignment", "set_replication_throttle",
    "upsert_user", "delete_user", "set_user_quotas", "add_acl", "remove_acl"})
READY_POLL_S = 0.05


class ClusterMembership:
    def __init__(self, settings: Settings, on_applied: Callable[[], None],
                 metadata_factory: MetadataFactory = RaftMetadata, peer_tls: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.broker_id = settings.broker_id()
        self.self_address, self.partner_addresses = settings.raft_addresses()
        password = settings.cluster.password
        self.peers = PeerClient(BrokerSigner(self.broker_id, password, time.time) if password else None, tls=peer_tls)
        self.raft: MetadataGroup | None = None
        # How `start_raft` makes the metadata group: PySyncObj in a broker; unit tests pass an in-memory one-member
        # group (tests/unit/metadata_double.py) so a broker in a unit test opens no socket.
        self.metadata_factory = metadata_factory
        self._on_applied_callback = on_applied
        self._loop: asyncio.AbstractEventLoop | None = None
        self._controller: asyncio.Task[None] | None = None
        self._alive_since: dict[int, float] = {}
        self.stopping = False
        self.directory_id = ""  # this broker's data volume (`adopt_storage`)

    # -- lifecycle -----------------------------------------------------------------------------------------------

    async def start_raft(self) -> None:
        """Join the metadata Raft group (PySyncObj binds and replays its journal in its own thread)."""
        self._loop = asyncio.get_running_loop()
        bind = f"{self.settings.broker.host}:{self.settings.broker.raft_port}"
        self.raft = await asyncio.to_thread(
            self.metadata_factory, self.self_address, self.partner_addresses, self.settings.storage.wal_dir,
            self.settings.cluster.password, self._on_applied, bind)
        log.info("raft.started", extra={"self": self.self_address, "partners": self.partner_addresses})

    async def wait_metadata_ready(self) -> None:
        """Until the metadata is caught up with a leader (needs a quorum); logs while it waits."""
        assert self.raft is not None
        next_log = time.monotonic() + 5
        while not self.raft.is_ready():
            if time.monotonic() > next_log:
                log.warning("raft.waiting_for_quorum", extra={"partners": self.partner_addresses,
                                                              "connected": sorted(self.raft.connected_partners())})
                next_log = time.monotonic() + 10
            await asyncio.sleep(READY_POLL_S)
        await self.propose_retrying(commands.barrier(self.broker_id), attempts=240)

    async def adopt_storage(self, directory_id: str) -> None:
        """Before any replica opens: a data volume other than the one the metadata knows for this broker (a new
        PVC, a wiped disk) holds none of its old copies, so the broker leaves every ISR first — none of them can
        then be elected with fewer records than were acknowledged."""
        self.directory_id = directory_id
        known = self.view.broker(self.broker_id)
        registered = known.get("directory_id") if known else None
        if registered is None or registered == directory_id:
            return  # a first start, or metadata from before volumes had an identity
        stranded = await self.propose_retrying(commands.replace_storage(self.broker_id, directory_id))
        log.warning("broker.storage_replaced", extra={"previous": registered, "now": directory_id})
        if stranded:
            log.error("broker.storage_replaced_sole_replica", extra={
                "partitions": stranded, "detail": "this broker was their only in-sync replica; their records are "
                                                  "gone with the old volume"})

    async def register(self) -> None:
        """Record this broker's addresses in the metadata (again when they changed, e.g. a new pod IP)."""
        entry = commands.register_broker(
            self.broker_id, host=self.settings.advertised_host(), http_port=self.settings.broker.port,
            grpc_port=self.settings.broker.grpc_port, raft_address=self.self_address, zone=self.settings.broker.zone,
            directory_id=self.directory_id, internal_port=self.settings.broker.internal_port,
            internal_tls=self.settings.tls.enabled_on("internal"))
        current = self.view.broker(self.broker_id)
        if current is None or dict(current) != {k: v for k, v in entry.items() if k not in ("op", "id")}:
            await self.propose_retrying(entry)
        if legacy := self.legacy_peers():
            log.warning("cluster.legacy_peers", extra={"brokers": legacy, "detail": (
                "brokers of a version without the internal listener: this broker's client port serves their "
                "broker-to-broker calls until they run this version (docs/SECURITY.md)")})

    def start_controller(self) -> None:
        self._controller = asyncio.create_task(self._controller_loop(), name="controller")
        self._controller.add_done_callback(log_task_death)

    def begin_stop(self) -> None:
        """From now on this broker's controller elects nobody (it is handing its own leaderships away)."""
        self.stopping = True

    @property
    def is_ready(self) -> bool:
        return self.raft is not None and self.raft.is_ready()

    async def stop(self) -> None:
        """Stop the controller, close peer connections, leave Raft."""
        self.stopping = True
        if self._controller is not None:
            self._controller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._controller
        await self.peers.close()
        if self.raft is not None:
            await asyncio.to_thread(self.raft.destroy_synchronous)

    # -- metadata ------------------------------------------------------------------------------------------------

    @property
    def state(self) -> StateView:
        """The applied metadata, read-only (a snapshot Raft never changes once published)."""
        assert self.raft is not None, "metadata is not started"
        return self.raft.state

    @property
    def view(self) -> MetadataView:
        return MetadataView(self.state)

    def _on_applied(self, _command: Command, _result: CommandResult) -> None:
        """PySyncObj thread: a command was applied here; tell the event loop (local replicas follow)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_applied_callback)

    async def propose(self, command: Command, timeout_s: float = PROPOSE_TIMEOUT_S) -> CommandResult:
        assert self.raft is not None
        older = self.brokers_below(commands.METADATA_VERSION)
        if command["op"] in UNKNOWN_TO_PREVIOUS_VERSION and older:
            # A broker of the previous version refuses a command it does not know and keeps its state as it was,
            # while this version applies it: the two would disagree from then on (partition versions, then ISRs).
            raise NotReady(f"metadata change {command['op']} refused while brokers {older} still run the previous "
                           "version: finish the rolling upgrade first, then retry")
        if command["op"] == "elect_leader" and "expected_version" in command and older:
            # The previous version ignores expected_version: it would apply an election this one refuses. Until the
            # upgrade ends, elections check the epoch only, as that version's did.
            command = commands.elect_leader(command["topic"], command["partition"],
                                            expected_epoch=command["expected_epoch"], expected_version=None,
                                            leader=command["leader"], isr=command["isr"])
        return await self.raft.propose(command, timeout_s)

    async def propose_retrying(self, command: Command, attempts: int = 20) -> CommandResult:
        """For this broker's own bookkeeping: retry while there is no leader yet."""
        for attempt in range(attempts):
            try:
                return await self.propose(command)
            except MetadataConflict:
                raise
            except GoQueueError:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.25)
        return None

    def broker_url(self, broker_id: int) -> str:
        """Where this broker sends broker-to-broker calls for `broker_id`: its internal listener (https when it
        registered TLS there), or — for a broker of the previous version, which registered none (a rolling upgrade)
        — its client port, as that version did."""
        broker = self.state["brokers"].get(broker_id)
        if broker is None:
            raise NotLeader(f"broker {broker_id} has not registered its address yet", leader=broker_id)
        scheme = "https" if broker.get("internal_tls") else "http"
        return f"{scheme}://{_host_for_url(broker['host'])}:{broker.get('internal_port', broker['http_port'])}"

    def brokers_below(self, version: int) -> list[int]:
        """Configured brokers registered with a metadata version below `version` (`commands.METADATA_VERSION`;
        none registered: 1): during a rolling upgrade, the brokers still on the previous release."""
        if self.raft is None:
            return []
        brokers = self.state["brokers"]
        return [b for b in range(len(self.settings.cluster.peers))
                if b in brokers and brokers[b].get("metadata_version", 1) < version]

    def legacy_peers(self) -> list[int]:
        """Configured brokers registered without an internal port: brokers of the previous version, which send
        replica fetches and forwarded requests to the client port. While any is left the client port serves them
        (`api/http`); once the last one has restarted on this version that route is closed."""
        if self.raft is None:
            return []
        configured = range(len(self.settings.cluster.peers))
        brokers = self.state["brokers"]
        return [b for b in configured if b in brokers and "internal_port" not in brokers[b]]

    def quorum_reachable(self) -> bool:
        """Could a proposal commit now: are this broker and the Raft partners it is connected to a majority?"""
        assert self.raft is not None
        connected = self.raft.connected_partners() & set(self.partner_addresses)
        return (len(connected) + 1) * 2 > len(self.partner_addresses) + 1

    def alive_brokers(self) -> set[int]:
        """This broker plus those whose Raft connection is up, as seen from here."""
        assert self.raft is not None
        connected = self.raft.connected_partners()
        alive = {self.broker_id}
        for broker_id, broker in self.state["brokers"].items():
            if broker["raft_address"] in connected:
                alive.add(broker_id)
        now = time.monotonic()
        for broker_id in alive:
            self._alive_since.setdefault(broker_id, now)
        for broker_id in set(self._alive_since) - alive:
            del self._alive_since[broker_id]
        return alive

    def metadata_leader_id(self) -> int | None:
        assert self.raft is not None
        address = self.raft.leader_address()
        for broker_id, broker in self.state["brokers"].items():
            if broker["raft_address"] == address:
                return int(broker_id)
        return None

    # -- controller ----------------------------------------------------------------------------------------------

    async def _controller_loop(self) -> None:
        assert self.raft is not None
        while True:
            await asyncio.sleep(CONTROLLER_TICK_S)
            if not self.raft.is_leader() or self.stopping:
                continue
            alive = self.alive_brokers()
            plan = plan_leadership(self.state, alive, self._alive_since, time.monotonic(),
                                   self.settings.replication.preferred_leader_delay_s)
            for command in plan:
                await self.propose_quietly(command)
            # After the elections: a step planned on the state they changed would be refused (compare-and-set).
            for step in plan_reassignments(self.state, alive):
                await self.propose_quietly(step)

    async def propose_quietly(self, command: Command, timeout_s: float = PROPOSE_TIMEOUT_S) -> None:
        """A proposal the system makes by itself (controller, ISR upkeep, admin plans): a refusal is logged, not
        raised — the next tick looks again."""
        try:
            await self.propose(command, timeout_s)
        except (MetadataConflict, GoQueueError) as exc:
            log.info("controller.proposal_refused", extra={"command": command["op"], "reason": str(exc)})
            return
        if command["op"] == "elect_leader":
            elected = self.view.partition(command["topic"], command["partition"])
            log.info("partition.leader_elected", extra={
                "topic": command["topic"], "partition": command["partition"], "leader": command["leader"],
                "epoch": elected["leader_epoch"] if elected else None, "isr": elected["isr"] if elected else None})
        elif command["op"] == "complete_reassignment":
            moved = self.view.partition(command["topic"], command["partition"])
            log.info("partition.reassignment_completed", extra={
                "topic": command["topic"], "partition": command["partition"],
                "replicas": moved["replicas"] if moved else None})

    # -- read-outs -------------------------------------------------------------------------------------------------

    def members(self) -> list[dict[str, Any]]:
        alive = self.alive_brokers()
        leader = self.metadata_leader_id()
        return [{"id": int(broker_id), "host": b["host"], "httpPort": b["http_port"], "grpcPort": b["grpc_port"],
                 "raftAddress": b["raft_address"], "zone": b["zone"], "alive": broker_id in alive,
                 "metadataLeader": broker_id == leader}
                for broker_id, b in sorted(self.state["brokers"].items())]


def log_task_death(task: asyncio.Task[None]) -> None:
    """Done-callback of background tasks: an unexpected death is logged with its traceback, never silent."""
    if not task.cancelled() and task.exception() is not None:
        log.error("cluster.task_died", extra={"task": task.get_name()}, exc_info=task.exception())


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host

