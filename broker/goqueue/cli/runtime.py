"""What every GoQueue CLI shares: global options, the client, output mode, and the one error mapping.

Errors: a `GoQueueError` prints one line `error: <message>` on stderr and exits with the class's `exit_code`
(2 bad input, 3 not found, 4 conflict, 5 server-side/retriable, 6 unreachable, 7 not authenticated,
8 forbidden by the ACLs); usage errors exit 2.

Stopping: Ctrl-C (SIGINT) and SIGTERM unwind the command — a consume gives back its unacked leases and leaves its
group, as on a normal exit — and exit 130 and 143 (128 + the signal, the shell's convention).
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import NoReturn

import click
import typer
from pydantic import ValidationError

from goqueue.cli.options import spread_global_options
from goqueue.cli.render import Data, Output, print_data
from goqueue.client.auth import Credentials
from goqueue.client.delivery import DEFAULT_DELIVERY_TIMEOUT_S
from goqueue.client.http import DEFAULT_SERVER, GoQueueClient
from goqueue.client.tls import ClientTls
from goqueue.errors import GoQueueError, InvalidRequest

EXIT_TERMINATED = 128 + signal.SIGTERM  # typer ends a Ctrl-C (KeyboardInterrupt) with 130 = 128 + SIGINT


REQUEST_TIMEOUT_S = 30.0


@dataclass
class CliContext:
    server: str
    output: Output
    request_timeout_s: float = REQUEST_TIMEOUT_S
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def client(self, delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S) -> GoQueueClient:
        return GoQueueClient(self.server, timeout_s=self.request_timeout_s, delivery_timeout_s=delivery_timeout_s,
                             credentials=self.credentials(), tls=self.tls())

    def tls(self) -> ClientTls | None:
        """--ca (the brokers' CA bundle) and --cert/--key (a client certificate: mTLS); None: the system's CAs."""
        if self.ca_file is None and self.cert_file is None and self.key_file is None:
            return None
        return ClientTls(self.ca_file, self.cert_file, self.key_file)

    def credentials(self) -> Credentials | None:
        """--user with its password: from --password-file (preferred: argv is visible to every local user), else
        --password / GOQUEUE_PASSWORD. No --user: anonymous."""
        if self.user is None:
            if self.password is not None or self.password_file is not None:
                raise InvalidRequest("a password without --user (or GOQUEUE_USER): give both")
            return None
        if self.password_file is not None:
            return Credentials(self.user, read_secret(self.password_file, "--password-file"))
        if self.password is None:
            raise InvalidRequest(f"--user {self.user} needs a password: --password-file FILE (or GOQUEUE_PASSWORD)")
        return Credentials(self.user, self.password)

    @property
    def structured(self) -> bool:
        """-o json or -o yaml: output for scripts (no tables, no progress display)."""
        return self.output is not Output.TABLE

    def emit(self, value: Data) -> bool:
        """Print `value` as JSON or YAML when asked for; False when the command draws its table instead."""
        if not self.structured:
            return False
        print_data(value, self.output)
        return True


ServerOption = typer.Option(
    DEFAULT_SERVER, "--server", "-s", envvar="GOQUEUE_SERVER", show_default=True,
    help="Broker URL, or several separated by commas: when one cannot be reached the next is used.")
OutputOption = typer.Option(Output.TABLE, "--output", "-o",
                            help="table for people; json or yaml (the API's field names) for scripts.")
UserOption = typer.Option(
    None, "--user", "-u", envvar="GOQUEUE_USER", show_default=False,
    help="Authenticate as this user (SCRAM-SHA-512); without it requests are anonymous.")
PasswordOption = typer.Option(
    None, "--password", envvar="GOQUEUE_PASSWORD", show_default=False,
    help="The user's password. Prefer --password-file or GOQUEUE_PASSWORD: argv is visible to other users.")
PasswordFileOption = typer.Option(
    None, "--password-file", envvar="GOQUEUE_PASSWORD_FILE", show_default=False,
    help="File holding the user's password (its first line), e.g. a mounted Secret.")
CaOption = typer.Option(
    None, "--ca", envvar="GOQUEUE_CA_FILE", show_default=False,
    help="PEM CA bundle the brokers' certificates are checked against (https:// servers), e.g. ca.crt of the "
         "Secret <cluster>-cluster-ca-cert; without it the system's CAs.")
CertOption = typer.Option(
    None, "--cert", envvar="GOQUEUE_CERT_FILE", show_default=False,
    help="PEM client certificate (mTLS): the broker authenticates its CN as User:<CN>. Needs --key.")
KeyOption = typer.Option(
    None, "--key", envvar="GOQUEUE_KEY_FILE", show_default=False, help="PEM private key of --cert.")
RequestTimeoutOption = typer.Option(
    REQUEST_TIMEOUT_S, "--request-timeout", min=0.001, envvar="GOQUEUE_REQUEST_TIMEOUT",
    help="Seconds to wait for a broker's answer to one request (kubectl's --request-timeout).")


def read_secret(path: Path, option: str) -> str:
    """The first line of a secret file; an unreadable or empty file is bad input (exit 2)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InvalidRequest(f"{option} {path}: {exc.strerror}") from None
    if not lines or not lines[0]:
        raise InvalidRequest(f"{option} {path} is empty")
    return lines[0]


def context(ctx: typer.Context) -> CliContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliContext), "the root callback sets the CLI context"
    return obj


# typer >= 0.2x vendors its own click (`typer._click`), whose exceptions derive from typer.TyperException rather
# than click.ClickException: catch both families so every usage error is one line, never a traceback.
_USAGE_ERRORS: tuple[type[Exception], ...] = (
    click.ClickException, getattr(typer, "TyperException", click.ClickException))


def _usage_message(exc: Exception) -> str:
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return str(message)


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C does (`finally` blocks and `with` exits run), instead of ending Python at once."""
    raise SystemExit(EXIT_TERMINATED)


def main(app: typer.Typer, prog: str) -> NoReturn:
    """A CLI's entry point: the process's signals (see the module docstring), then `run`."""
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(run(app, prog))


def run(app: typer.Typer, prog: str, args: list[str] | None = None) -> int:
    """Run a Typer app with GoQueue's error contract; returns the process exit code (`args`: default argv)."""
    try:
        command = spread_global_options(typer.main.get_command(app))
        result = command.main(args=args, prog_name=prog, standalone_mode=False)
    except GoQueueError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        print(f"error: invalid {where or 'value'}: {first['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    except (click.exceptions.Abort, typer.Abort):
        print("aborted", file=sys.stderr)
        return 1
    except _USAGE_ERRORS as exc:
        print(f"error: {_usage_message(exc)}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2) or 2)
    except BrokenPipeError:
        return 0
    return result if isinstance(result, int) else 0
