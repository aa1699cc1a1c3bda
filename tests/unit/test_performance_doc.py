"""Every figure in docs/PERFORMANCE.md names what printed it (issue 17, item 5).

A figure is a number with a unit of time, rate, size or share (`568,250 rec/s`, `59 ms`, `2.73 s`, `100 MiB`,
`69 %`). The paragraph holding it, or for a table the caption just before it (the "Run of …" line), must name
the command that printed it — `python bench/<script>.py …` or `python -m pytest … -s` — with the run's date, or
say `hand-measured on <date>` with the steps. A named script or test file must exist, and each `--option` a bench
command passes must be one the script defines, so a renamed script or option breaks the document here, not in a
reader's shell.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "PERFORMANCE.md"

NUMBER = r"\d[\d,]*(?:\.\d+)?[kM]?"
FIGURE = re.compile(rf"(?<![\w.]){NUMBER}(?:\s?[\u2013-]\s?{NUMBER})?\s?"
                    r"(?:rec/s|/s|ms|s|min|KB|MB|MiB|GB|GiB|%)(?![\w/])")
COMMAND = re.compile(r"`(?:[A-Z_]+=\S+\s+)*(?:nice\s+-n\s+\d+\s+)?python3?\s+"
                     r"(?:(?P<script>bench/[\w/]+\.py)(?P<args>[^`]*)|-m\s+pytest\s(?P<tests>[^`]*?)\s-s\b[^`]*)`")
CODE = re.compile(r"`[^`]*`")
HAND = re.compile(r"hand-measured on \d{4}-\d{2}-\d{2}")
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")


def blocks(text: str) -> list[str]:
    """Paragraphs, tables, list items and headings, in order (a heading is a block of its own)."""
    found: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            if current:
                found.append("\n".join(current))
            current = []
            if line.startswith("#"):
                found.append(line)
            continue
        current.append(line)
    if current:
        found.append("\n".join(current))
    return found


def sourced(block: str) -> bool:
    return bool(HAND.search(block) or (COMMAND.search(block) and DATE.search(block)))


def has_figure(block: str) -> bool:
    """A number with a unit outside inline code (`minDelaySeconds: 10`, `--seconds 4` are settings, not figures)."""
    return not block.startswith("#") and bool(FIGURE.search(CODE.sub("", block)))


def caption(parts: list[str], i: int) -> str:
    """A table's caption: the paragraph before it, or before the tables in a row it ends (one caption may head
    several). A paragraph has none: it names its own source."""
    if not parts[i].startswith("|"):
        return ""
    j = i - 1
    while j >= 0 and parts[j].startswith("|"):
        j -= 1
    return parts[j] if j >= 0 and not parts[j].startswith("#") else ""


def unsourced_figures(text: str) -> list[str]:
    """The blocks holding a figure with neither a dated command nor a hand-measured mark, in them or just before."""
    parts = blocks(text)
    return [block for i, block in enumerate(parts)
            if has_figure(block) and not sourced(block) and not sourced(caption(parts, i))]


def test_every_figure_names_the_command_that_printed_it_or_is_hand_measured() -> None:
    bad = unsourced_figures(DOC.read_text())
    assert not bad, "figures with no dated `python bench/…` command and no 'hand-measured on <date>':\n\n" + \
        "\n\n".join(b[:300] for b in bad)


def test_the_named_scripts_tests_and_options_exist() -> None:
    commands = list(COMMAND.finditer(DOC.read_text()))
    assert commands, "docs/PERFORMANCE.md names no command"
    for command in commands:
        if command["script"]:
            script = REPO / command["script"]
            assert script.is_file(), f"{command[0]}: no {command['script']}"
            source = script.read_text()
            for option in re.findall(r"(?<!\S)(--[\w-]+)", command["args"]):
                assert f'"{option}"' in source, f"{command[0]}: {command['script']} defines no {option}"
        else:
            for path in re.findall(r"(?<!\S)(tests/\S+?\.py)", command["tests"]):
                assert (REPO / path).is_file(), f"{command[0]}: no {path}"


@pytest.mark.parametrize(("text", "flagged"), [
    ("Run of 2026-12-06: `python bench/cluster.py --seconds 4`\n\n| a | 5 rec/s |", False),
    ("Three brokers reach 568,250 rec/s.", True),
    ("| a | 5 rec/s |", True),
    ("`python bench/cluster.py` (no date) gives 3 s.", True),
    ("`make up` took 29 s, hand-measured on 2026-11-28: `time make up`.", False),
    ("`python -m pytest tests/x.py -s -q` on 2026-11-28 printed 0.6 s.", False),
    ("Consumers take pages of 200 records with 4 consumers.", False),
    ("A roll waits `minDelaySeconds: 10` between brokers.", False),
    ("Run of 2026-12-06, `python bench/x.py`:\n\n| a | 5 s |\n\n| b | 6 s |", False),
    ("Run of 2026-12-06, `python bench/x.py`:\n\n| a | 5 s |\n\nIt took 6 s.", True),
    ("Run of 2026-12-06, `python bench/x.py`: 5 s.\n\nThe broker does 2M rec/s.", True),
    ("`GOQUEUE_X=1 nice -n 5 python -m pytest\ntests/t.py -s -q` (2026-12-06)\n\n| a | 5 s |", False),
])
def test_the_check_flags_a_figure_without_a_source(text: str, flagged: bool) -> None:
    assert bool(unsourced_figures(text)) is flagged
