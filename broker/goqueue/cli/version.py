"""`--version` (this CLI's, offline) and `version` (this CLI's and the broker's, as `kubectl version` prints both)."""

from __future__ import annotations

from typing import Any

import typer

from goqueue import __version__
from goqueue.cli.render import print_fields
from goqueue.cli.runtime import context


def print_version(ctx: typer.Context, _param: Any, value: bool) -> None:
    """Eager `--version`: print `goqueue-cli 0.1.0` and stop before any other option is looked at."""
    if value and not ctx.resilient_parsing:
        print(f"{ctx.find_root().info_name} {__version__}")
        raise typer.Exit()


VersionOption = typer.Option(False, "--version", is_eager=True, callback=print_version,
                             help="Print this CLI's version and exit (`version` adds the broker's).")


def version(ctx: typer.Context) -> None:
    """This CLI's version and the broker's (GET /v1/version)."""
    cli = context(ctx)
    if not cli.structured:
        print_fields({"Client version": __version__})  # printed even when the broker cannot be reached
    with cli.client() as client:
        server = client.request("GET", "/v1/version").json()
    if not cli.emit({"clientVersion": __version__, "serverVersion": server["version"],
                     "brokerId": server["brokerId"]}):
        print_fields({"Server version": f"{server['version']} (broker {server['brokerId']})"})
