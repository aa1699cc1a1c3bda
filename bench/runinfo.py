"""What every benchmark prints around its figures: the date (UTC), the machine's cores and its load average.

A figure copied into docs/PERFORMANCE.md takes these with it: on a shared machine the load decides as much as the
code does (tests/unit/test_performance_doc.py checks the document names the command and the date).
"""

from __future__ import annotations

import os
import time


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f}"


def header(title: str) -> str:
    return (f"# {title} — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — {os.cpu_count()} cores, "
            f"{_load()}")


def footer() -> str:
    return f"# {_load()} at the end"
