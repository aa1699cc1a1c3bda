"""The operator's one settings object, loaded from the environment (`GOQUEUE_OPERATOR_*`) by `main` only.

The same shape as the broker's `goqueue.config.Settings` and kopf's `OperatorSettings`: every field documents its
unit and why its default is what it is. The rule for variables: `GOQUEUE_OPERATOR_` + the field name upper-cased
(`metrics_port` → `GOQUEUE_OPERATOR_METRICS_PORT`); lists are comma-separated. No other module reads the
environment: handlers receive these settings through kopf's `memo` (see `context.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

ENV_PREFIX = "GOQUEUE_OPERATOR_"


class SettingsError(Exception):
    """An invalid setting; the message names the variable."""


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], BeforeValidator(_split_list)]


class OperatorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    namespaces: CommaList = Field(
        default_factory=list, description="Namespaces to watch; empty watches the whole cluster (the default "
        "install: one operator serves every namespace).")
    image_repository: str = Field(
        "ghcr.io/goqueue/goqueue", min_length=1, description="Broker image repository; a cluster's image is "
        "<repository>:<spec.version> unless its spec.image says otherwise.")
    cluster_domain: str = Field(
        "cluster.local", min_length=1, description="DNS domain of the Kubernetes cluster, for the brokers' peer "
        "names (<pod>.<headless service>.<namespace>.svc.<domain>).")
    metrics_host: str = Field("0.0.0.0", description="Address of the operator's /metrics and /healthz server.")
    metrics_port: int = Field(
        8081, ge=0, le=65535, description="Port of /metrics and /healthz (the liveness probe); 0 disables it.")
    cluster_resync_s: float = Field(
        10.0, gt=0, description="Seconds between periodic cluster reconciles: drift of children heals and a roll, "
        "resize or drain advances at least this often (kopf's advice: a timer next to the event handlers).")
    drift_interval_s: float = Field(
        10.0, gt=0, description="Seconds between drift checks of each GoQueueTopic and GoQueueConsumerGroup "
        "(the issue's default: out-of-band changes are repaired within seconds, at one describe per resource).")
    broker_timeout_s: float = Field(
        5.0, gt=0, description="HTTP timeout of one broker admin call; short so one dead broker cannot stall a "
        "reconcile.")
    retry_delay_s: float = Field(
        5.0, gt=0, description="Delay before a reconcile retries after a temporary failure (broker not ready).")
    finalizer_timeout_s: float = Field(
        300.0, ge=0, description="A topic or group whose brokers stay unreachable this long after its deletion "
        "is released without deleting anything on the brokers (with a Warning Event), so a finalizer never "
        "wedges a namespace.")
    peering_name: str = Field(
        "goqueue-operator", description="kopf peering object: operators with the same name elect one active "
        "replica; the others stand by.")
    standalone: bool = Field(
        False, description="Run without peering (a single replica, or tests without the peering CRDs).")
    priority: int | None = Field(
        None, description="kopf peering priority; the highest replica is active, the others stand by. Default: "
        "random per process, because kopf freezes every operator when two share the highest priority, and the "
        "replicas of one Deployment cannot be told apart otherwise.")
    manage_crds: bool = Field(
        True, description="Apply the GoQueue CRDs bundled with this operator at start (server-side apply, never "
        "over a newer operator's: see bundled_crds.py), so `helm upgrade` of the chart upgrades them too; false "
        "where CRDs are managed elsewhere (GitOps, a cluster admin) and the operator may not patch them.")
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$", description="Log level.")


def env_var_for(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def load_settings(environ: Mapping[str, str]) -> OperatorSettings:
    """Defaults, then `GOQUEUE_OPERATOR_*` variables; raises SettingsError naming the variable."""
    raw = {name: environ[env_var_for(name)] for name in OperatorSettings.model_fields
           if env_var_for(name) in environ}
    unknown = sorted(k for k in environ if k.startswith(ENV_PREFIX)
                     and k.removeprefix(ENV_PREFIX).lower() not in OperatorSettings.model_fields)
    if unknown:
        known = ", ".join(env_var_for(n) for n in OperatorSettings.model_fields)
        raise SettingsError(f"unknown setting {unknown[0]}; known: {known}")
    try:
        return OperatorSettings.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "settings"
        raise SettingsError(f"{env_var_for(field)}: {error['msg']}") from exc
