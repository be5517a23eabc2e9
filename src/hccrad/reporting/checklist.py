"""The TRIPOD+AI checklist (and the CLEAR items a run can answer), resolved against a run.

`resources/reporting/checklist.tsv` lists each item (guideline, item, topic, our short words)
and what answers it, `answered_by`: references joined by " ; " that must all hold, each one of

- ``output:PATH`` a file of the run, relative to its working directory; ``{cohort}`` is the
  response cohort, ``{endpoint}`` every endpoint (each must exist), ``*`` a glob with at least
  one match; ``A|B`` alternatives (a cross-validation run writes other files than a split one);
- ``doc:FILE#HEADING`` a markdown heading of the project's documentation (README.md, ...);
- ``user`` the authors' to write (ethics, funding, ...).

The resolver checks that each output exists and each heading is there, so the checklist can
never point at something the run did not write.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

CHECKLIST_COLUMNS = ("guideline", "item", "topic", "text", "answered_by")
STATUS_ANSWERED = "answered"
STATUS_USER = "user to fill"
STATUS_MISSING = "missing"
RESOLVED_COLUMNS = (*CHECKLIST_COLUMNS, "status", "where", "missing")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def read_checklist(path: Path) -> pd.DataFrame:
    """The checklist resource, every column text, checked for its columns and ids."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in CHECKLIST_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    repeated = table[table.duplicated(["guideline", "item"], keep=False)]
    if not repeated.empty:
        raise ValueError(f"{path}: repeated items {repeated[['guideline', 'item']].values}")
    empty = table.loc[table["answered_by"].str.strip() == "", "item"].tolist()
    if empty:
        raise ValueError(f"{path}: items {empty} have no answered_by (write `user` if theirs)")
    return table


def markdown_headings(path: Path) -> set[str]:
    """The headings of a markdown file (outside fenced code blocks)."""
    headings, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            headings.add(match.group(1))
    return headings


def expand_output(pattern: str, cohort: str, endpoints: Sequence[str]) -> list[str]:
    """An output pattern with its placeholders filled: one path per endpoint if it has one."""
    filled = pattern.replace("{cohort}", cohort)
    if "{endpoint}" not in filled:
        return [filled]
    return [filled.replace("{endpoint}", endpoint) for endpoint in endpoints]


def _exists(run_dir: Path, path: str) -> bool:
    """Whether a run path (maybe a glob) names at least one existing file or folder."""
    if any(c in path for c in "*?["):
        return any(run_dir.glob(path))
    return (run_dir / path).exists()


def resolve_reference(
    reference: str, run_dir: Path, project_dir: Path, cohort: str, endpoints: Sequence[str]
) -> tuple[list[str], list[str]]:
    """One reference's (found, missing) places: run paths or `FILE#heading`."""
    kind, _, target = reference.strip().partition(":")
    if kind == "output":
        for alternative in target.split("|"):
            paths = expand_output(alternative.strip(), cohort, endpoints)
            if all(_exists(run_dir, p) for p in paths):
                return paths, []
        # None holds: name the first alternative's missing paths (the split run's files).
        paths = expand_output(target.split("|")[0].strip(), cohort, endpoints)
        return [], [p for p in paths if not _exists(run_dir, p)]
    if kind == "doc":
        file, _, heading = target.partition("#")
        path = project_dir / file
        found = path.is_file() and heading in markdown_headings(path)
        return ([target], []) if found else ([], [target])
    raise ValueError(f"answered_by reference {reference!r} is not output:, doc: or user")


def resolve_checklist(
    checklist: pd.DataFrame,
    run_dir: Path,
    project_dir: Path,
    cohort: str,
    endpoints: Sequence[str],
) -> pd.DataFrame:
    """Each item with its status (answered, user to fill, missing), where, and what is missing."""
    rows = []
    for item in checklist.itertuples(index=False):
        references = [r.strip() for r in item.answered_by.split(" ; ")]
        where: list[str] = []
        missing: list[str] = []
        if references == ["user"]:
            status = STATUS_USER
        else:
            for reference in references:
                found, lacking = resolve_reference(
                    reference, Path(run_dir), Path(project_dir), cohort, endpoints
                )
                where += found
                missing += lacking
            status = STATUS_MISSING if missing else STATUS_ANSWERED
        rows.append(
            {
                **item._asdict(),
                "status": status,
                "where": "; ".join(where),
                "missing": "; ".join(missing),
            }
        )
    return pd.DataFrame(rows, columns=list(RESOLVED_COLUMNS))


def checklist_markdown(resolved: pd.DataFrame) -> str:
    """The resolved checklist as a markdown page, one table per guideline."""
    counts = resolved["status"].value_counts()
    lines = [
        "# Reporting checklist of this run",
        "",
        "TRIPOD+AI (Collins et al., BMJ 2024;385:e078378) and the CLEAR items a run can answer "
        "(Kocak et al., Insights Imaging 2023;14:75). Item wording is shortened; read the "
        "guidelines for the full text. Status: "
        + ", ".join(
            f"{counts.get(s, 0)} {s}" for s in (STATUS_ANSWERED, STATUS_USER, STATUS_MISSING)
        )
        + ".",
    ]
    for guideline, table in resolved.groupby("guideline", sort=False):
        lines += [
            "",
            f"## {guideline}",
            "",
            "| item | topic | status | where |",
            "| --- | --- | --- | --- |",
        ]
        for row in table.itertuples(index=False):
            places = [row.where, f"missing: {row.missing}" if row.missing else ""]
            where = "; ".join(p for p in places if p)
            cells = [row.item, row.topic, row.status, where.replace("|", "\\|")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
