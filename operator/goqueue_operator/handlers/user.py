"""GoQueueUser: the user's credentials (its Secret and the brokers' SCRAM keys), its ACLs and its quotas, reconciled
through the broker API as the operator's own principal (Strimzi's User Operator for KafkaUser).

Every reconcile (create, update, resume, and the drift timer):
  credentials — the Secret named after the user holds the password (a new random one when it is missing, unreadable
  or `goqueue.io/rotate-credentials` asks for one, the annotation removed once done); the brokers get the salted
  SCRAM keys computed here from it when they do not know the user or no longer accept the password (a change made
  behind the operator's back: drift, repaired with a Warning Event);
  quotas — set when the brokers' differ from spec.quotas;
  ACLs — the brokers hold exactly spec.authorization.acls for User:<name>: missing entries added, others removed.
Deleting the resource removes the user and every ACL of its principal from the brokers (the finalizer, shared with
topics and groups: handlers/reconciler.py); the Secret goes with the resource (owner reference).

`tls` users get a client certificate instead of a password: CN = the user name (the brokers' principal
`User:<CN>`), signed by the cluster CA the operator runs (`spec.tls` on, issuer SelfSigned), in Secret `<user>`
(`tls.crt`, `tls.key`, `ca.crt`: the bundle that verifies the brokers); issued again when it is due for renewal
(`spec.tls.renewBeforeDays` of the cluster), when the signing CA changed, or on rotation. A cluster without TLS, or
whose certificates cert-manager issues, refuses such a user (Ready=False with the reason and a Warning Event) and
nothing is created — never a Secret that would look like working credentials.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import kopf

from goqueue.client.auth import Credentials
from goqueue.client.http import GoQueueClient
from goqueue.errors import AclNotFound, Unauthenticated, UserNotFound
from goqueue.models import UserInfo
from goqueue_operator import GROUP, VERSION
from goqueue_operator.brokers import BrokerTls, VerifiedAs, in_thread
from goqueue_operator.context import context_of
from goqueue_operator.handlers.reconciler import (
    Declaration,
    Declared,
    IndexKey,
    Session,
    finalize,
    index_entry,
    reconcile,
)
from goqueue_operator.kube import Kube, KubeError
from goqueue_operator.pki.certs import read_certificate
from goqueue_operator.pki.material import read_material, secret_data
from goqueue_operator.resources.names import SECRET_SUFFIXES, TLS_CA_KEY, TLS_CERT_KEY, TLS_KEY_KEY, child_name
from goqueue_operator.settings import OperatorSettings
from goqueue_operator.status.conditions import Condition, timestamp
from goqueue_operator.users import principal
from goqueue_operator.users.acls import AclPlan, broker_acls, plan_acls
from goqueue_operator.users.client_cert import MAX_COMMON_NAME, certificate_problem, issue_client_certificate
from goqueue_operator.users.credentials import (
    PASSWORD_BYTES,
    build_certificate_secret,
    build_user_secret,
    encoded,
    owned_by,
    scram_data,
    secret_password,
)
from goqueue_operator.users.view import ROTATE_ANNOTATION, UserView
from goqueue_operator.views import ClusterView

USER = (GROUP, VERSION, "goqueueusers")
LOGIN_TIMEOUT_S = 5.0
Action = tuple[str, str, bool]  # (Event reason, message, warning)


class Refused(Exception):
    """A reconcile that cannot go on until someone changes something: the Ready condition saying what."""

    def __init__(self, condition: Condition) -> None:
        super().__init__(condition.message)
        self.condition = condition


def tls_refusal(view: UserView, why: str) -> Refused:
    return Refused(Condition("Ready", False, "TlsAuthenticationUnavailable", (
        f"user {view.broker_name!r} asks for tls authentication (a client certificate signed by the cluster CA), "
        f"but {why}; nothing was created"), warning=True))


class UserKind:
    kind = "GoQueueUser"

    def __init__(self, kube: Kube | None = None,
                 new_password: Callable[[], str] = lambda: secrets.token_urlsafe(PASSWORD_BYTES),
                 logs_in: Callable[[str, str, str, BrokerTls | None], Awaitable[bool]] | None = None) -> None:
        self._kube = kube
        self._new_password = new_password
        self._logs_in = logs_in or _logs_in

    @property
    def kube(self) -> Kube:
        assert self._kube is not None, "declare and delete need the Kubernetes client"
        return self._kube

    def parse(self, body: dict[str, Any]) -> UserView:
        return UserView.from_body(body)

    async def declare(self, view: UserView, client: GoQueueClient, session: Session) -> Declared:
        fields: dict[str, Any] = {"principal": view.principal}
        actions: list[Action] = []
        try:
            await self._refuse_reserved_name(view)
            if view.spec.authentication.type == "tls":
                issued = await self._certificate(view, session, actions, fields)
            else:
                issued = await self._credentials(view, client, session, actions)
        except Refused as refused:
            return Declared(refused.condition, fields, actions)
        await self._quotas(view, client, actions)
        acls = await self._acls(view, client, session, actions)
        if view.rotation_requested:
            await self.kube.patch(self.kind, view.meta.namespace, view.meta.name,
                                  {"metadata": {"annotations": {ROTATE_ANNOTATION: None}}})
        fields.update(secret=view.broker_name, acls=acls)
        if (issued_at := timestamp(issued) if issued is not None else view.credentials_issued_at) is not None:
            fields["credentialsIssuedAt"] = issued_at
        ready = Condition("Ready", True, "Synced", f"user {view.broker_name!r} matches the spec: {acls} ACL entries")
        return Declared(ready, fields, actions)

    async def _refuse_reserved_name(self, view: UserView) -> None:
        """A user may not take a name that would give its creator more than a user: the operator's principal or a
        configured super user (a password or certificate for a super user), or a name its Secret would share with a
        cluster's credentials (`<cluster>-raft`, `-operator-credentials`, …: a cluster created later would adopt it)."""
        name = view.broker_name
        body = await self.kube.get("GoQueueCluster", view.meta.namespace, view.cluster_name)
        config = ((body or {}).get("spec") or {}).get("config") or {}
        super_users = {entry.strip() for entry in str(config.get("security.superUsers", "")).split(",")}
        problem = reserved_name_problem(name, super_users)
        if problem is not None:
            raise Refused(Condition("Ready", False, "InvalidSpec", f"user name {name!r} {problem}: choose another "
                                    "name (GoQueueUsers are ordinary principals)", warning=True))

    # -- credentials --------------------------------------------------------------------------------------------

    async def _credentials(self, view: UserView, client: GoQueueClient, session: Session,
                           actions: list[Action]) -> datetime | None:
        """The Secret and the brokers' credential agree; when a new password was issued, when."""
        name = view.broker_name
        secret = await self._kube_call(view, lambda: self.kube.get("Secret", view.meta.namespace, name))
        if secret is not None and not owned_by(secret, view):
            raise Refused(Condition("Ready", False, "SecretConflict", (
                f"Secret {name} exists and is not owned by this GoQueueUser: the operator will not overwrite it"),
                warning=True))
        password = secret_password(secret)
        if password is None or view.rotation_requested:
            rotated = password is not None
            password = self._new_password()
            if secret is None:
                await self._kube_call(view, lambda: self.kube.create(build_user_secret(view, password)))
            else:
                await self._kube_call(view, lambda: self.kube.patch(
                    "Secret", view.meta.namespace, name, {"stringData": scram_data(view, password)}))
            await in_thread(lambda: client.upsert_user(name, password))
            actions.append(("CredentialsRotated", f"user {name!r}: a new password is in Secret {name}; the old one "
                            "no longer works", False) if rotated else
                           ("UserCreated", f"user {name!r} created on the brokers (SCRAM-SHA-512); its password is "
                            f"in Secret {name}", False))
            return session.now
        if await self._broker_user(client, name) is None:
            await in_thread(lambda: client.upsert_user(name, password))
            actions.append(("UserCreated", f"user {name!r} created on the brokers from Secret {name}", False))
        elif not await self._logs_in(client.server, name, password, getattr(client, "broker_tls", None)):
            await in_thread(lambda: client.upsert_user(name, password))
            actions.append(("CredentialsRepaired", f"user {name!r}: the brokers no longer accepted the password in "
                            f"Secret {name} (changed behind the operator's back); it is theirs again", True))
        return None

    async def _certificate(self, view: UserView, session: Session, actions: list[Action],
                           fields: dict[str, Any]) -> datetime | None:
        """The Secret holds a client certificate the brokers accept for the user; when one was issued, when."""
        name, namespace = view.broker_name, view.meta.namespace
        if len(name) > MAX_COMMON_NAME:
            raise Refused(Condition("Ready", False, "InvalidSpec", (
                f"a tls user's name is its certificate's CN, at most {MAX_COMMON_NAME} characters; {name!r} has "
                f"{len(name)}")))
        body = await self.kube.get("GoQueueCluster", namespace, view.cluster_name)
        cluster = ClusterView.from_body(body or {"metadata": {"name": view.cluster_name}})
        if not cluster.spec.tls.enabled:
            raise tls_refusal(view, f"GoQueueCluster {view.cluster_name} has spec.tls.enabled false")
        if cluster.spec.tls.issuer != "SelfSigned":
            raise tls_refusal(view, f"GoQueueCluster {view.cluster_name} has its certificates issued by "
                              "cert-manager, and the operator signs client certificates only with its own cluster CA")
        material = read_material(
            await self._kube_call(view, lambda: self.kube.get("Secret", namespace, child_name(cluster.name,
                                                                                            "cluster-ca"))),
            await self._kube_call(view, lambda: self.kube.get("Secret", namespace, child_name(cluster.name,
                                                                                            "cluster-ca-cert"))),
            None)
        if material.signing is None or not material.client_bundle:
            raise Refused(Condition("Ready", False, "ClusterNotReady",
                                    f"GoQueueCluster {view.cluster_name} has no cluster CA yet"))
        secret = await self._kube_call(view, lambda: self.kube.get("Secret", namespace, name))
        if secret is not None and not owned_by(secret, view):
            raise Refused(Condition("Ready", False, "SecretConflict", (
                f"Secret {name} exists and is not owned by this GoQueueUser: the operator will not overwrite it"),
                warning=True))
        held = secret_data(secret)
        tls = cluster.spec.tls
        problem = "rotation requested" if view.rotation_requested else certificate_problem(
            held.get(TLS_CERT_KEY), held.get(TLS_KEY_KEY), material.signing.cert_pem, name, now=session.now,
            renew_before=timedelta(days=tls.renew_before_days))
        if problem is None:
            fields["certificateNotAfter"] = timestamp(read_certificate(held[TLS_CERT_KEY]).not_after)
            if held.get(TLS_CA_KEY) != material.client_bundle:  # a renewed CA: trust what the brokers now serve
                await self._kube_call(view, lambda: self.kube.patch("Secret", namespace, name, {"data": encoded(
                    {TLS_CA_KEY: material.client_bundle})}))
            return None
        signing = material.signing
        pair = issue_client_certificate(signing, name, now=session.now, validity=timedelta(days=tls.validity_days))
        data = {TLS_CERT_KEY: pair.cert_pem, TLS_KEY_KEY: pair.key_pem, TLS_CA_KEY: material.client_bundle}
        if secret is None:
            await self._kube_call(view, lambda: self.kube.create(build_certificate_secret(view, data)))
        else:
            await self._kube_call(view, lambda: self.kube.patch("Secret", namespace, name, {"data": encoded(data)}))
        fields["certificateNotAfter"] = timestamp(read_certificate(pair.cert_pem).not_after)
        first = secret is None
        actions.append(("UserCreated" if first else "CredentialsRotated",
                        f"user {name!r}: a client certificate (CN={name}, signed by the cluster CA) is in Secret "
                        f"{name}" + ("" if first else f"; issued again: {problem}"), False))
        return session.now

    async def _kube_call(self, view: UserView, call: Callable[[], Any]) -> Any:
        try:
            return await call()
        except KubeError as exc:
            if exc.status in (401, 403):
                problem = f"cannot read or write Secret {view.broker_name}: {exc}"
                raise Refused(Condition("Ready", False, "SecretNotWritable", problem, warning=True)) from exc
            raise

    @staticmethod
    async def _broker_user(client: GoQueueClient, name: str) -> UserInfo | None:
        users = await in_thread(client.list_users)
        return next((u for u in users if u.name == name), None)

    # -- quotas and ACLs -----------------------------------------------------------------------------------------

    async def _quotas(self, view: UserView, client: GoQueueClient, actions: list[Action]) -> None:
        if view.spec.authentication.type == "tls":
            return  # the brokers keep quotas with a SCRAM user (the CRD refuses quotas on a tls user)
        name, wanted = view.broker_name, view.spec.quotas
        live = await self._broker_user(client, name)
        held = (None, None) if live is None else (live.producer_byte_rate, live.consumer_byte_rate)
        if held == (wanted.producer_byte_rate, wanted.consumer_byte_rate):
            return
        await in_thread(lambda: client.set_user_quotas(name, wanted.producer_byte_rate, wanted.consumer_byte_rate))
        actions.append(("QuotasUpdated", f"user {name!r}: produce {_rate(wanted.producer_byte_rate)}, consume "
                        f"{_rate(wanted.consumer_byte_rate)}", False))

    async def _acls(self, view: UserView, client: GoQueueClient, session: Session, actions: list[Action]) -> int:
        desired = broker_acls(view.principal, view.spec.authorization.acls)
        live = await in_thread(lambda: client.list_acls(principal=view.principal))
        plan = plan_acls(desired, live)
        await _apply(client, plan)
        if not plan.empty:
            drift = not session.spec_changed and bool(live)
            actions.append(("AclsRepaired" if drift else "AclsUpdated",
                            f"user {view.broker_name!r}: {plan.summary()}", drift))
        return len(desired)

    async def delete(self, view: UserView, client: GoQueueClient) -> tuple[str, str]:
        name = view.broker_name
        live = await in_thread(lambda: client.list_acls(principal=view.principal))
        await _apply(client, AclPlan(add=[], remove=live))
        gone = False
        with contextlib.suppress(UserNotFound):  # a tls user, or deleted meanwhile: the outcome we wanted
            await in_thread(lambda: client.delete_user(name))
            gone = True
        return "UserDeleted", (f"user {name!r} {'deleted' if gone else 'was not on the brokers'}; "
                               f"{len(live)} ACL entries of {view.principal} removed")


async def _apply(client: GoQueueClient, plan: AclPlan) -> None:
    for acl in plan.add:
        await in_thread(lambda acl=acl: client.add_acl(acl))  # type: ignore[misc]
    for acl in plan.remove:
        with contextlib.suppress(AclNotFound):  # removed meanwhile
            await in_thread(lambda acl=acl: client.remove_acl(acl))  # type: ignore[misc]


def reserved_name_problem(name: str, super_users: set[str]) -> str | None:
    """Why `name` is no GoQueueUser's to take, or None (see `UserReconciler._refuse_reserved_name`)."""
    if name == principal.OPERATOR_USER:
        return "is the operator's own principal, a super user of every cluster"
    if f"User:{name}" in super_users:
        return "is a super user of the cluster (spec.config security.superUsers)"
    for suffix in SECRET_SUFFIXES:
        if name.endswith(suffix):
            return f"ends in {suffix!r}, the name of a Secret a GoQueueCluster keeps its credentials in"
    return None


async def _logs_in(server: str, name: str, password: str, tls: BrokerTls | None) -> bool:
    """Whether the brokers accept the password: one SCRAM exchange and one call that needs only to be let in, over
    https verified as the operator's own client is (`tls`) where the broker speaks TLS."""
    def attempt() -> bool:
        with GoQueueClient(server, timeout_s=LOGIN_TIMEOUT_S, credentials=Credentials(name, password),
                           transport=VerifiedAs(tls) if tls is not None else None) as client:
            try:
                client.cluster_leader()
            except Unauthenticated:
                return False
        return True

    return await in_thread(attempt)


def _rate(byte_rate: int | None) -> str:
    return "unlimited" if byte_rate is None else f"{byte_rate} B/s"


PARSER = UserKind()  # for the index, which only parses


def index_user(body: kopf.Body, **_: Any) -> dict[IndexKey, Declaration]:
    return index_entry(PARSER, dict(body))


async def reconcile_user(body: kopf.Body, memo: kopf.Memo, users_by_broker_name: kopf.Index, **_: Any) -> None:
    await reconcile(UserKind(context_of(memo).kube), body, memo, users_by_broker_name)


async def delete_user(body: kopf.Body, memo: kopf.Memo, users_by_broker_name: kopf.Index, **_: Any) -> None:
    await finalize(UserKind(context_of(memo).kube), body, memo, users_by_broker_name)


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    kopf.index(*USER, id="users_by_broker_name", registry=registry)(index_user)
    for on in (kopf.on.create, kopf.on.update, kopf.on.resume):
        on(*USER, id="reconcile", registry=registry)(reconcile_user)
    kopf.timer(*USER, id="drift", interval=settings.drift_interval_s, initial_delay=settings.drift_interval_s,
               registry=registry)(reconcile_user)
    kopf.on.delete(*USER, id="finalize", registry=registry)(delete_user)
