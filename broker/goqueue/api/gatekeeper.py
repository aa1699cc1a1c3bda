"""`Gatekeeper`: who a client request acts as, and whether it may — the one authority both APIs ask.

Authentication: a client certificate verified by the listener's TLS (mTLS; `tls.clientAuth`) is `User:<its CN>`;
a SCRAM-SHA-512 exchange (`scram_start`, `scram_finish`) against the credentials in the replicated
metadata (or the configured administrator's password file) ends in a session token; a request then carries it as
`Authorization: Bearer <token>` (gRPC: metadata `authorization`). No credentials at all is the anonymous principal,
served only when `security.allowAnonymous` is on. Credentials that are present but wrong are refused even then.

Authorization: `check(principal, resource, operation)` asks `acls.authorize` over the metadata's ACLs, unless ACLs are
off or the principal is a super user. It runs at the broker that received the client's request; a request another
broker forwarded (the internal listener) was checked there and is not checked again (docs/SECURITY.md).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from goqueue.config import Settings
from goqueue.errors import Forbidden, InvalidRequest, Unauthenticated
from goqueue.replication.state import AclEntry
from goqueue.replication.view import AclView, MetadataView
from goqueue.security import scram, tokens
from goqueue.security.acls import Acl, Operation, PatternType, Resource, ResourceType, authorize
from goqueue.security.exchanges import ExchangeTable
from goqueue.security.principal import ANONYMOUS, Principal, user, valid_user_name
from goqueue.security.quotas import current_principal
from goqueue.security.scram import ScramCredential, ScramError

log = logging.getLogger(__name__)

UNKNOWN_USER_CONTEXT = b"goqueue scram unknown-user credentials v1"

BEARER = "bearer "


@dataclass(frozen=True)
class ScramStarted:
    exchange_id: str
    server_first: str


@dataclass(frozen=True)
class ScramFinished:
    server_final: str
    token: str
    principal: Principal
    expires_at_s: float


@dataclass(frozen=True)
class Access:
    """A request's caller, bound to the gatekeeper: what a route or rpc asks before it acts. `principal` None is a
    request another broker forwarded over the internal listener, authorized where it was received."""

    gatekeeper: Gatekeeper
    principal: Principal | None

    def check(self, resource: Resource, operation: Operation) -> None:
        if self.principal is not None:
            self.gatekeeper.check(self.principal, resource, operation)

    def allowed(self, resource: Resource, operation: Operation) -> bool:
        return self.principal is None or self.gatekeeper.allowed(self.principal, resource, operation)


def acl_from_entry(entry: AclEntry | AclView) -> Acl:
    return Acl(entry["principal"], ResourceType(entry["resource_type"]), entry["name"],
               PatternType(entry["pattern"]), Operation(entry["operation"]), entry["allow"])


def acl_entry(acl: Acl) -> AclEntry:
    return {"principal": acl.principal, "resource_type": acl.resource_type.value, "name": acl.name,
            "pattern": acl.pattern.value, "operation": acl.operation.value, "allow": acl.allow}


class Gatekeeper:
    def __init__(self, settings: Settings, view: Callable[[], MetadataView],
                 clock: Callable[[], float] = time.time) -> None:
        security, peers = settings.security, settings.cluster.peers
        self.anonymous_allowed = security.anonymous_allowed(peers)
        # tls.clientAuth=required: every authenticated request comes over a connection with a verified certificate
        # (gRPC refuses others in the handshake; HTTP here, so that probes without one still get /readyz).
        self.certificate_required = settings.tls.cert_file is not None and settings.tls.client_auth == "required"
        self.acls_enforced = security.acls_enforced(peers)
        self._super_users = frozenset(security.super_users)
        self._lifetime_s = security.token_lifetime_s
        self._view = view
        self._clock = clock
        password = settings.cluster.password
        # A cluster shares its token key (derived from its Raft password); a lone broker without one makes its own.
        self._signer = tokens.TokenSigner(tokens.cluster_key(password) if password else tokens.random_key())
        # Made-up credentials for unknown user names: alike on every broker of a cluster, so asking two brokers
        # cannot tell a real user (the same salt everywhere) from a made-up one.
        self._unknown_user_key = (tokens.cluster_key(password, UNKNOWN_USER_CONTEXT) if password
                                  else tokens.random_key())
        self._exchanges = ExchangeTable(clock)
        self._admin = _admin_credential(settings)
        if self._admin is not None:
            self._super_users |= {str(user(self._admin[0]))}
        self._acls: tuple[int, list[Acl]] = (-1, [])
        if self.anonymous_allowed:
            log.warning("security.anonymous_access_allowed", extra={
                "reason": "security.allowAnonymous is on" if security.allow_anonymous else
                "a single broker without cluster.peers (the quick start) allows anonymous access by default",
                "acls_enforced": self.acls_enforced})

    # -- authentication -------------------------------------------------------------------------------------------

    def _credential(self, name: str) -> ScramCredential | None:
        if self._admin is not None and name == self._admin[0]:
            return self._admin[1]
        stored = self._view().users.get(name)
        if stored is None:
            return None
        return ScramCredential(stored["salt"], stored["iterations"], stored["stored_key"], stored["server_key"])

    def scram_start(self, client_first: str) -> ScramStarted:
        try:
            exchange = scram.ServerExchange(client_first, self._credential, unknown_user_key=self._unknown_user_key)
        except ScramError as exc:
            raise InvalidRequest(f"SCRAM: {exc}") from None
        return ScramStarted(self._exchanges.add(exchange), exchange.server_first)

    def scram_finish(self, exchange_id: str, client_final: str) -> ScramFinished:
        try:
            exchange = self._exchanges.take(exchange_id)
        except ScramError as exc:
            log.info("security.authentication_failed", extra={"reason": str(exc)})
            raise Unauthenticated(f"SCRAM authentication failed: {exc}") from None
        try:
            server_final = exchange.finish(client_final)
        except ScramError as exc:
            log.info("security.authentication_failed", extra={"user": exchange.username, "reason": str(exc)})
            raise Unauthenticated(f"SCRAM authentication failed: {exc}") from None
        principal = user(exchange.username)
        expires_at_s = self._clock() + self._lifetime_s
        # Tagged with the credential the proof was checked against: a password changed meanwhile ends it at once.
        token = self._signer.issue(tokens.Session(str(principal), expires_at_s,
                                                  tokens.credential_tag(exchange.stored_key)))
        return ScramFinished(server_final, token, principal, expires_at_s)

    def principal(self, authorization: str | None, certificate_name: str | None = None) -> Principal:
        """The principal of a request from its `Authorization` value (None: none sent), else from the verified
        client certificate of its connection (`certificate_name`, the subject CN: mTLS), else anonymous. A token
        wins over the certificate: the connection may be a shared proxy's, the token is the caller's. The request's
        quotas are counted against it from here on (`quotas.current_principal`)."""
        found = self._principal(authorization, certificate_name)
        current_principal.set(found)
        return found

    def _principal(self, authorization: str | None, certificate_name: str | None) -> Principal:
        if self.certificate_required and not certificate_name:
            raise Unauthenticated("this listener requires a client certificate (tls.clientAuth=required): give "
                                  "--cert and --key, signed by the cluster's clients CA")
        if not authorization and certificate_name:
            if not valid_user_name(certificate_name):  # e.g. CN=ANONYMOUS, or characters no user name has
                raise Unauthenticated("the client certificate's CN is not a user name (1-128 of A-Z a-z 0-9 . _ @ -, "
                                      "not ANONYMOUS)")
            return user(certificate_name)
        if not authorization:
            if self.anonymous_allowed:
                return ANONYMOUS
            raise Unauthenticated("authentication required: anonymous access is off on this cluster (give "
                                  "--user and --password-file, or a bearer token from POST /v1/auth/scram/start)")
        if not authorization.lower().startswith(BEARER):
            raise Unauthenticated("the Authorization header must be 'Bearer <session token>'")
        try:
            session = self._signer.verify(authorization[len(BEARER):].strip(), self._clock())
        except tokens.TokenError as exc:
            raise Unauthenticated(str(exc)) from None
        name = session.principal.partition(":")[2]
        credential = self._credential(name)
        if credential is None or tokens.credential_tag(credential.stored_key) != session.credential_tag:
            raise Unauthenticated(f"the session of {session.principal} ended: the user was deleted or its password "
                                  "changed; authenticate again")
        return user(name)

    # -- authorization --------------------------------------------------------------------------------------------

    def allowed(self, principal: Principal, resource: Resource, operation: Operation) -> bool:
        if not self.acls_enforced or str(principal) in self._super_users:
            return True
        return authorize(self._current_acls(), principal, resource, operation)

    def check(self, principal: Principal, resource: Resource, operation: Operation) -> None:
        if not self.allowed(principal, resource, operation):
            raise Forbidden(f"{principal} may not {operation.value} {resource}: no ACL allows it",
                            principal=str(principal), operation=operation.value, resource=str(resource))

    def _current_acls(self) -> list[Acl]:
        view = self._view()
        applied, acls = self._acls
        if applied != view.applied:  # parsed once per metadata change, not per request
            acls = [acl_from_entry(entry) for entry in view.acls]
            self._acls = (view.applied, acls)
        return acls


def _admin_credential(settings: Settings) -> tuple[str, ScramCredential] | None:
    """The configured administrator's credential, alike on every broker (its salt is derived from the name), so a
    token one broker issued for it verifies on the others."""
    name, path = settings.security.admin_user, settings.security.admin_password_file
    if name is None or path is None:
        return None
    try:
        password = path.read_text().strip()
    except OSError as exc:
        raise OSError(f"security.adminPasswordFile {path}: {exc.strerror}") from exc
    # A salt need not be secret, and must not be derived from one: server-first hands it to anyone who names the
    # admin, and a salt computed from cluster.password would let them test password guesses at hash speed offline.
    context = f"goqueue admin salt {name}"
    salt = hashlib.sha256(context.encode()).digest()[:scram.SALT_BYTES]
    return name, scram.make_credential(password, salt=salt)
