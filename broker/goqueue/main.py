"""`goqueue-broker`: parse the command line, load settings, run `BrokerServer`.

Exit codes: 0 after a clean shutdown, 2 for an invalid configuration (one line naming the key; nothing written to
disk), 1 when the broker cannot start (port in use, unreadable topic registry …).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from goqueue import __version__
from goqueue.config import ConfigError, all_keys, env_var_for, load_settings
from goqueue.logs import setup_logging
from goqueue.resolver import install_serialized_resolver

log = logging.getLogger("goqueue")


def build_parser() -> argparse.ArgumentParser:
    keys = "\n".join(f"  {key:<32} {env_var_for(key)}" for key in all_keys())
    parser = argparse.ArgumentParser(
        prog="goqueue-broker", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a GoQueue broker.",
        epilog=f"Every setting can come from the YAML file or the environment (the environment wins):\n{keys}")
    parser.add_argument("--config", type=Path, help="YAML config file")
    parser.add_argument("--version", action="version", version=f"goqueue-broker {__version__}")
    parser.add_argument("--print-config", action="store_true", help="print the effective settings and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"goqueue-broker: invalid config: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(settings.model_dump_json(by_alias=True, indent=2, exclude={"cluster": {"password"}}))
        return 0
    setup_logging(settings.log.level, settings.log.format)
    install_serialized_resolver()
    from goqueue.security.tls import TlsConfigError
    from goqueue.server import BrokerServer  # after validation: a bad config answers without loading servers

    try:
        asyncio.run(BrokerServer(settings).serve())
        # The loop gave SIGTERM back its default action when it closed, and interpreter exit still joins threads: a
        # second SIGTERM from here on (a supervisor repeating its stop) must not turn a clean stop into death by
        # signal. Seen in CI: exit status -15 after a complete shutdown. (Ctrl-C keeps its KeyboardInterrupt.)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except TlsConfigError as exc:
        log.error("broker.start_failed", extra={"reason": str(exc)})
        print(f"goqueue-broker: unusable TLS files: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        log.error("broker.start_failed", extra={"reason": str(exc)})
        print(f"goqueue-broker: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
