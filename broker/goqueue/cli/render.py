"""Output: rich tables for people, JSON or YAML (from the same pydantic models, camelCase keys as on the wire
and in the CRDs) for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

console = Console(highlight=False, soft_wrap=True)

Data = BaseModel | Sequence[BaseModel] | dict[str, Any] | list[Any]


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def plain(value: Data) -> Any:
    """JSON-compatible data of a model, a list of models, or plain data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [plain(v) if isinstance(v, BaseModel) else v for v in value]
    return value


def dump_yaml(data: Any) -> str:
    """Block-style YAML in the data's own key order (as kubectl -o yaml keeps the object's)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


def print_data(value: Data, output: Output) -> None:
    """`-o json` or `-o yaml`: the whole answer, keys as the HTTP API names them."""
    assert output is not Output.TABLE, "tables are drawn by each command"
    data = plain(value)
    if output is Output.YAML:
        print(dump_yaml(data), end="")
    else:
        print(json.dumps(data, indent=2))


def print_json(value: Data) -> None:
    print_data(value, Output.JSON)


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    table = Table(*columns, title=title, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def print_fields(fields: dict[str, Any]) -> None:
    width = max(len(k) for k in fields) if fields else 0
    for key, value in fields.items():
        console.print(f"{key + ':':<{width + 1}} {'' if value is None else value}")


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
