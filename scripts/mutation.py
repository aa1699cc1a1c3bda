"""Mutation-testing pass over the code that decides durability and delivery (issue 17, item 6).

Mutates `broker/goqueue/storage/`, `replication/isr.py`, `replication/metadata.py` and `consumers/leases.py`
with mutmut 3 and runs, for each mutant, the unit tests that execute the mutated function. Prints
killed / survived / timeout / no-tests per module and writes every mutant that was not killed, as a diff, to
`<workdir>/survivors.txt` for review (docs/TESTING.md says how to read them).

    nice -n 19 python3 scripts/mutation.py            # the whole pass (about 2,570 mutants; see docs/TESTING.md)
    python3 scripts/mutation.py --report              # the table and survivors.txt again, from the last run
    nice -n 19 python3 scripts/mutation.py --rerun    # after adding tests: only the unreviewed survivors
    nice -n 19 python3 scripts/mutation.py --resume   # finish a run that was stopped

`--rerun` refreshes the scratch copy's package and tests and reruns every unreviewed mutant the last run let
survive, plus those of a function changed since (mutmut regenerates them); a killed mutant stays killed, since
adding tests cannot revive it, and mutants an interrupted run never reached stay unchecked. Keep TESTS unchanged
between a run and its reruns (a changed selection makes mutmut start over): add new tests to the files listed.

Everything happens in a scratch copy (`.mutation/`, git-ignored): the broker package, tests/, harness/ and a
copy of pyproject.toml with mutmut's settings added, so the shared work tree is never mutated and mutmut's
`mutants/` directory never lands in the repository. Not part of `make test` (too slow for CI).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# what is mutated, relative to the scratch copy (the package is copied to <workdir>/goqueue)
MODULES = [
    "goqueue/storage/*",
    "goqueue/replication/isr.py",
    "goqueue/replication/metadata.py",
    "goqueue/consumers/leases.py",
]

# the fast tests that exercise them: storage on temp files, the replication state machines, leases, and the
# consumer coordinator over the in-memory metadata group (delivery through leases); about 5 s in all
TESTS = [
    "tests/unit/test_storage_batch.py",
    "tests/unit/test_storage_compaction.py",
    "tests/unit/test_storage_identity.py",
    "tests/unit/test_storage_index.py",
    "tests/unit/test_storage_log.py",
    "tests/unit/test_storage_log_stateful.py",
    "tests/unit/test_storage_producers.py",
    "tests/unit/test_storage_recovery.py",
    "tests/unit/test_storage_retention.py",
    "tests/unit/test_storage_writer.py",
    "tests/unit/test_replica_restart.py",
    "tests/unit/test_replication_isr.py",
    "tests/unit/test_metadata.py",
    "tests/unit/test_consumers_leases.py",
    "tests/unit/test_consumers_offsets.py",
    "tests/unit/test_consumers_groups.py",
    "tests/unit/test_consumers_coordinator.py",
]

REVIEWED = Path(__file__).with_name("mutation.reviewed.tsv")  # survivors judged not to change durability/delivery

STATUS_ORDER = ["killed", "timeout", "survived", "no tests", "suspicious", "segfault", "not checked"]


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def prepare(workdir: Path) -> None:
    """A fresh scratch copy of what the tests import, with mutmut's settings in its pyproject.toml."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(REPO / "broker" / "goqueue", workdir / "goqueue", ignore=ignore)
    shutil.copytree(REPO / "tests", workdir / "tests", ignore=ignore)
    shutil.copytree(REPO / "harness", workdir / "harness", ignore=ignore)
    tests = [test for test in TESTS if (REPO / test).exists()]
    settings = "\n".join([
        "",
        "[tool.mutmut]  # added by scripts/mutation.py to its scratch copy only",
        'source_paths = ["goqueue"]',
        f"only_mutate = {_toml_list(MODULES)}",
        'also_copy = ["harness"]',
        f"pytest_add_cli_args_test_selection = {_toml_list(['-m', 'unit', *tests])}",
        'pytest_add_cli_args = ["-p", "no:cacheprovider"]',
        # a fresh process per mutant from a server that imported pytest and collected once: forking the main
        # process would inherit whatever threads the statistics run left behind
        'process_isolation = "forkserver"',
        # a mutant that loops forever is stopped after 6x the CPU time of its tests (+1 s) instead of mutmut's 30x:
        # the loops in the log's read and scan paths made the default cost minutes per such mutant here
        "timeout_multiplier = 3.0",
        "use_git_change_detection = false",
        "",
    ])
    (workdir / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text() + settings)


def run(workdir: Path, jobs: int, mutants: list[str]) -> int:
    return subprocess.call(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *mutants], cwd=workdir,
    )


def rerun(workdir: Path, jobs: int) -> None:
    """Rerun what the last run did not kill, against the package and tests as they are now."""
    before = results(workdir)
    reviewed = _reviewed()  # judged to change nothing: rerunning them would prove nothing new
    not_killed = [name for statuses in before.values() for name, status in statuses.items()
                  if status in ("survived", "no tests", "suspicious") and name not in reviewed]
    never_checked = {name for statuses in before.values() for name, status in statuses.items()
                     if status == "not checked"}  # an interrupted run: left for a full pass, not rerun here
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    # copy2 keeps each file's time: mutmut regenerates the mutants of a file newer than its mutated copy
    shutil.copytree(REPO / "broker" / "goqueue", workdir / "goqueue", ignore=ignore, dirs_exist_ok=True)
    for tests in (workdir / "tests", workdir / "mutants" / "tests"):
        shutil.rmtree(tests, ignore_errors=True)
    shutil.copytree(REPO / "tests", workdir / "tests", ignore=ignore)
    if not_killed and run(workdir, jobs, not_killed) != 0:
        sys.exit("mutmut run failed")
    unchecked = [name for statuses in results(workdir).values() for name, status in statuses.items()
                 if status == "not checked" and name not in never_checked]  # of functions changed since
    if unchecked and run(workdir, jobs, unchecked) != 0:
        sys.exit("mutmut run failed")


def results(workdir: Path) -> dict[str, dict[str, str]]:
    """module → mutant → status, from the .meta files mutmut keeps beside each mutated file."""
    from mutmut.stats import status_by_exit_code

    found: dict[str, dict[str, str]] = {}
    for meta in sorted((workdir / "mutants" / "goqueue").rglob("*.py.meta")):
        module = str(meta.relative_to(workdir / "mutants" / "goqueue")).removesuffix(".meta")
        exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
        if exit_codes:
            found[module] = {name: status_by_exit_code[code] for name, code in sorted(exit_codes.items())}
    return found


def report(workdir: Path) -> None:
    found = results(workdir)
    if not found:
        sys.exit(f"no mutation results under {workdir}: run the pass first")
    columns = [*STATUS_ORDER[:4], "not checked"]
    print(f"{'module':26} {'mutants':>8} " + " ".join(f"{c:>11}" for c in columns) + f" {'survival':>9}")
    totals: Counter[str] = Counter()
    for module, statuses in found.items():
        counts = Counter(statuses.values())
        totals.update(counts)
        print(_row(module, counts, columns))
    print(_row("all", totals, columns))
    others = {status: n for status, n in totals.items() if status not in columns}
    if others:
        print("other statuses:", ", ".join(f"{status} {n}" for status, n in sorted(others.items())))

    reviewed = _reviewed()
    classes: Counter[str] = Counter()
    unreviewed = []
    for statuses in found.values():
        for name, status in statuses.items():
            if status in ("survived", "no tests", "suspicious"):
                if name in reviewed:
                    classes[reviewed[name]] += 1
                else:
                    unreviewed.append(name)
    print("survivors by class (scripts/mutation.reviewed.tsv):",
          ", ".join(f"{cls} {n}" for cls, n in classes.most_common()) or "none")
    print(f"unreviewed survivors (each must get a test, or a reviewed line saying why it changes nothing): "
          f"{len(unreviewed)}")
    for name in unreviewed:
        print("   ", name)
    with (workdir / "survivors.txt").open("w") as out:
        out.writelines(f"# {name}: {status} ({reviewed.get(name, 'UNREVIEWED')})\n{diff}\n"
                       for name, status, diff in _diffs(workdir, found))
    print(f"{sum(not_killed_counts(found))} mutants not killed, their diffs in {workdir / 'survivors.txt'}")


def _reviewed() -> dict[str, str]:
    """mutant name → class, from the reviewed list (tab-separated: name, class, why; # comments)."""
    lines = [line.split("\t") for line in REVIEWED.read_text().splitlines() if line and not line.startswith("#")]
    return {fields[0]: fields[1] for fields in lines}


def not_killed_counts(found: dict[str, dict[str, str]]) -> list[int]:
    return [sum(status in ("survived", "no tests", "suspicious") for status in statuses.values())
            for statuses in found.values()]


def _diffs(workdir: Path, found: dict[str, dict[str, str]]) -> list[tuple[str, str, str]]:
    """(mutant, status, diff) of every mutant not killed, read from the mutated copies (mutmut show, in-process)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    here = Path.cwd()
    os.chdir(workdir)  # mutmut reads its settings and mutants/ relative to the working directory
    try:
        diffs = []
        for module, statuses in found.items():
            for name, status in statuses.items():
                if status in ("killed", "timeout"):
                    continue
                try:
                    diffs.append((name, status, get_diff_for_mutant(name, path=Path("goqueue") / module)))
                except (OSError, KeyError, ValueError) as exc:  # a mutated copy gone or regenerated since
                    diffs.append((name, status, f"(no diff: {exc!r})\n"))
        return diffs
    finally:
        os.chdir(here)


def _row(module: str, counts: Counter[str], columns: list[str]) -> str:
    """Survival: survived + no tests (+ suspicious) over the mutants checked; timeouts count as detected."""
    checked = sum(counts.values()) - counts["not checked"]
    alive = checked - counts["killed"] - counts["timeout"]
    rate = f"{100 * alive / checked:.1f}%" if checked else "-"
    return f"{module:26} {sum(counts.values()):>8} " + " ".join(f"{counts[c]:>11}" for c in columns) + f" {rate:>9}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=REPO / ".mutation", help="scratch copy (default .mutation/)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--report", action="store_true", help="only print the last run's results")
    parser.add_argument("--resume", action="store_true",
                        help="finish an interrupted run in the existing scratch copy (its tests as they are there)")
    parser.add_argument("--rerun", action="store_true",
                        help="refresh package and tests in the scratch copy, rerun every mutant not killed")
    args = parser.parse_args()
    if args.rerun:
        rerun(args.workdir, args.jobs)
    elif args.resume:
        if run(args.workdir, args.jobs, []) != 0:  # mutmut keeps every result and tests only the unchecked
            sys.exit("mutmut run failed")
    elif not args.report:
        prepare(args.workdir)
        if run(args.workdir, args.jobs, []) != 0:
            sys.exit("mutmut run failed")
    report(args.workdir)


if __name__ == "__main__":
    main()
