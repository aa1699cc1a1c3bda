"""Options as people type them: global flags anywhere on the line, and names as arguments with the old flags kept.

Global flags (`--server`, `--output`, `--request-timeout`, `--user`, `--password`, `--password-file`, `--ca`,
`--cert`, `--key`) are declared
once on each CLI's root callback and copied
onto every group and command under it, as kubectl's and cobra's persistent flags are, so `goqueue-cli -o json topic
list`, `goqueue-cli topic -o json list` and `goqueue-cli topic list -o json` all mean the same. Each copy is parsed
by the command it sits on (so a value such as `--value -o` stays the value of `--value`) and writes into the one
`CliContext` the root built; the last occurrence on the line wins. A copy only overrides when it was typed: its
environment variable was already read by the root.

Names: the thing a command acts on is its first argument (`topic create orders`, `group delete my-group`). The
flag that used to carry it (`--name`, `--topic`, `--group`) still works, so runbooks and scripts written against
it keep running; giving both with different values is refused.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import typer

from goqueue.cli.render import Output

GLOBAL_PANEL = "Global options (also accepted before the command)"

# root parameter name → the CLI context's attribute it sets, and how its value converts
_STORE: dict[str, tuple[str, type]] = {
    "server": ("server", str), "output": ("output", Output), "request_timeout": ("request_timeout_s", float),
    "user": ("user", str), "password": ("password", str), "password_file": ("password_file", Path),
    "ca": ("ca_file", Path), "cert": ("cert_file", Path), "key": ("key_file", Path)}


def _store_when_typed(ctx: Any, param: Any, value: Any) -> Any:
    """Callback of a copied global option: write the typed value into the root's CLI context."""
    source = ctx.get_parameter_source(param.name)
    root = ctx.find_root().obj
    if value is not None and getattr(source, "name", "") == "COMMANDLINE" and root is not None:
        attribute, convert = _STORE[param.name]
        setattr(root, attribute, convert(value))
    return value


def spread_global_options(root: Any) -> Any:
    """Copy the root's global options onto every group and command below it (see the module docstring)."""
    globals_ = [p for p in root.params if p.name in _STORE]

    def walk(command: Any) -> None:
        for sub in getattr(command, "commands", {}).values():
            taken = {opt for p in sub.params for opt in (*p.opts, *p.secondary_opts)}
            for option in globals_:
                if taken.intersection(option.opts):
                    continue  # the command has its own meaning for this flag
                twin = copy.copy(option)
                twin.expose_value = False
                twin.envvar = None
                twin.callback = _store_when_typed
                twin.rich_help_panel = GLOBAL_PANEL
                sub.params.append(twin)
            walk(sub)

    walk(root)
    return root


class NameUsageError(typer.BadParameter):
    """A usage error (exit 2) whose message says it all, without click's "Invalid value:" prefix."""

    def format_message(self) -> str:
        return self.message


def resolve_name(argument: str | None, flag_value: str | None, *, what: str, flag: str) -> str:
    """The name from the argument or its flag alias; a usage error when neither or two different ones are given."""
    if argument is not None and flag_value is not None and argument != flag_value:
        raise NameUsageError(f"two {what} names given: {argument!r} and {flag} {flag_value!r}")
    name = argument if argument is not None else flag_value
    if name is None:
        raise NameUsageError(f"missing {what} name: give it as the first argument (or with {flag})")
    return name
