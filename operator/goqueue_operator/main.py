"""`goqueue-operator`: load settings, register the handlers, run kopf.

This is the composition root, the only module that reads the environment: `GOQUEUE_OPERATOR_*` settings
(settings.py) and `KUBECONFIG` (absent: the pod's service account). Handlers are registered here rather than by
decorators at import time because their timers' intervals are settings; the registry is kopf's own, so this is
`kopf run` with our settings applied first.

Exit codes: 0 after a clean stop (SIGTERM), 2 for invalid settings (one line naming the variable).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
import sys
from typing import Any

import kopf

from goqueue_operator import __version__, bundled_crds
from goqueue_operator.context import CONTEXT_KEY, OperatorContext, context_of
from goqueue_operator.handlers import cluster, group, rebalance, topic, user
from goqueue_operator.kube import Kube, KubeError
from goqueue_operator.metrics import OperatorMetrics, start_server
from goqueue_operator.settings import OperatorSettings, SettingsError, env_var_for, load_settings

log = logging.getLogger("goqueue_operator")
SETTINGS_KEY = "goqueue_settings"
KUBECONFIG_KEY = "goqueue_kubeconfig"
RUNNER_KEY = "goqueue_metrics_runner"
ANNOTATION_PREFIX = "goqueue.io"
INSTANT_EXIT_S = 10.0  # kopf's in-memory wait for a deleted resource's timer run: above a drift check's usual calls


def configure_kopf(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """kopf's own state lives in goqueue.io annotations (status is ours: its schema would prune kopf's fields),
    under our finalizer name; kopf posts Events only for warnings and errors (ours say what happened)."""
    kopf_settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration")
    kopf_settings.posting.level = logging.WARNING
    kopf_settings.posting.reporting_component = "goqueue-operator"
    kopf_settings.posting.reporting_instance = socket.gethostname()
    kopf_settings.watching.server_timeout = 300
    kopf_settings.networking.request_timeout = 60
    # A resource deleted while its drift timer is mid-run keeps kopf's finalizer until kopf sees the timer exit, and
    # kopf looked again only every `cancellation_polling` seconds (60 by default): a `kubectl delete` of a topic took
    # a minute whenever the deletion met a running drift check (seen in CI under load). kopf now awaits the timer's
    # current run in memory (no API calls) for up to INSTANT_EXIT_S, and polls every 5 s beyond that (each poll is
    # a PATCH of the resource, so not every second).
    kopf_settings.background.instant_exit_timeout = INSTANT_EXIT_S
    kopf_settings.background.cancellation_polling = 5.0
    kopf_settings.queueing.error_delays = [settings.retry_delay_s] * 3 + [settings.retry_delay_s * 4] * 3 + [60.0]


async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    ours: OperatorSettings = memo[SETTINGS_KEY]
    configure_kopf(settings, ours)
    metrics = OperatorMetrics()
    kube = Kube.connect(memo.get(KUBECONFIG_KEY), instance=socket.gethostname())
    memo[CONTEXT_KEY] = OperatorContext(settings=ours, kube=kube, metrics=metrics)
    if ours.metrics_port:
        memo[RUNNER_KEY] = await start_server(metrics, ours.metrics_host, ours.metrics_port)
    log.info("operator.started", extra={"version": __version__, "namespaces": ours.namespaces or "all",
                                        "metrics_port": ours.metrics_port})


async def install_crds(memo: kopf.Memo, **_: Any) -> None:
    """The bundled CRDs, applied before kopf watches anything (bundled_crds.py). An answer that retrying cannot
    change (401/403: the RBAC lacks the rule; 422: the API server refuses the definition) stops the operator with
    the fix; anything else (API server unreachable, a conflict, 5xx) is retried."""
    context = context_of(memo)
    if not context.settings.manage_crds:
        log.info("crd.unmanaged", extra={"setting": env_var_for("manage_crds"), "crds": bundled_crds.bundled_names()})
        return
    try:
        await bundled_crds.apply_bundled(context.kube, __version__)
    except KubeError as exc:
        if exc.status in (401, 403, 422):
            raise kopf.PermanentError(
                f"cannot apply the bundled CRDs: {exc}. Fix: grant get/patch on customresourcedefinitions "
                f"{', '.join(bundled_crds.bundled_names())} (the chart does with crds.manage=true), or set "
                f"{env_var_for('manage_crds')}=false and upgrade the CRDs yourself") from exc
        raise kopf.TemporaryError(f"cannot apply the bundled CRDs yet: {exc}",
                                  delay=context.settings.retry_delay_s) from exc


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if (runner := memo.get(RUNNER_KEY)) is not None:
        await runner.cleanup()
    if CONTEXT_KEY in memo:
        context = context_of(memo)
        context.close_clients()
        await context.kube.close()
    log.info("operator.stopped")


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    # kopf's own watch connection: the same credentials as ours (KUBECONFIG, else the pod's service account).
    kopf.on.login(registry=registry)(kopf.login_via_client)
    kopf.on.startup(registry=registry)(startup)
    kopf.on.startup(registry=registry)(install_crds)  # after startup (the Kube client), before any watch
    kopf.on.cleanup(registry=registry)(cleanup)
    cluster.register(registry, settings)
    topic.register(registry, settings)
    group.register(registry, settings)
    user.register(registry, settings)
    rebalance.register(registry, settings)
    return registry


def setup_logging(level: str) -> None:
    """JSON lines when not on a terminal (log collectors), kopf's readable format on one."""
    kopf.configure(log_format=kopf.LogFormat.FULL if sys.stderr.isatty() else kopf.LogFormat.JSON,
                   verbose=level == "DEBUG", log_refkey="object")
    logging.getLogger().setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the log
    if level != "DEBUG":
        # kopf's per-object "Timer 'drift' succeeded" lines: one per resource per drift interval, and our own
        # `event` lines already say what happened; warnings and errors still show.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    settings_help = "\n".join(f"  {env_var_for(name):<40} {field.description}"
                              for name, field in OperatorSettings.model_fields.items())
    parser = argparse.ArgumentParser(
        prog="goqueue-operator", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the GoQueue Kubernetes operator.",
        epilog=f"Settings come from the environment:\n{settings_help}\n\nKUBECONFIG selects a cluster; without "
               "it the pod's service account is used.")
    parser.add_argument("--version", action="version", version=f"goqueue-operator {__version__}")
    parser.add_argument("--print-settings", action="store_true", help="print the effective settings and exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(f"goqueue-operator: invalid settings: {exc}", file=sys.stderr)
        return 2
    if args.print_settings:
        print(settings.model_dump_json(indent=2))
        return 0
    setup_logging(settings.log_level)
    memo = kopf.Memo()
    memo[SETTINGS_KEY] = settings
    memo[KUBECONFIG_KEY] = os.environ.get("KUBECONFIG")
    # A peering name makes kopf's peering mandatory (it waits for the peering CRDs), so none when standalone.
    priority = settings.priority if settings.priority is not None else secrets.randbelow(2**31)
    kopf.run(registry=build_registry(settings), memo=memo, clusterwide=not settings.namespaces,
             namespaces=settings.namespaces, standalone=settings.standalone, priority=priority,
             peering_name=None if settings.standalone else settings.peering_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
