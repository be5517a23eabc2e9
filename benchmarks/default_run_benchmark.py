"""The default run end to end, before and after a change: wall time, CPU, jobs, per stage.

For each git revision given, clones this repository at that revision into a scratch folder and
runs the whole default workflow there (`snakemake --cores N`, the default config) with the
project's environment, under GNU time; counts the jobs Snakemake schedules (a dry run first);
then sums each rule's `benchmark:` files (wall and CPU seconds of its jobs) by stage (the rule
file that defines it). Writes a Markdown report with the revisions side by side and the ratio
of the last to the first. Run it on an idle machine: both runs share nothing but the disk.
Each revision's result is kept in the scratch folder (`<commit>.json`); a later call with the
same `--workdir` reuses a commit's result instead of running it again, so a baseline measured
once on the idle machine stands beside a later run on the same machine.

    .venv/bin/python benchmarks/default_run_benchmark.py --revisions 6def2cc main \\
        --cores 2 --workdir ~/hccrad-default-run --out benchmarks/default_run_benchmark.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hccrad.core.job_benchmarks import read_job_benchmarks
from hccrad.core.versions import machine_description

ROOT = Path(__file__).resolve().parent.parent
RULE = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)
JOB_COUNT = re.compile(r"^total\s+(\d+)", re.MULTILINE)
STEPS_DONE = re.compile(r"(\d+) of (\d+) steps \(100%\) done")
GNU_TIME = {
    "user_s": re.compile(r"User time \(seconds\): ([\d.]+)"),
    "system_s": re.compile(r"System time \(seconds\): ([\d.]+)"),
    "peak_rss_mib": re.compile(r"Maximum resident set size \(kbytes\): (\d+)"),
}


@dataclass
class RunResult:
    """One revision's default run: totals and per-stage sums."""

    revision: str
    commit: str
    jobs_planned: int
    jobs: int
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    date: str
    load_before: float
    load_after: float
    load_mean: float
    load_max: float
    stages: pd.DataFrame = field(repr=False)


def rule_stages(clone: Path) -> dict[str, str]:
    """Rule name -> stage (the stem of the .smk file that defines it)."""
    stages = {}
    for smk in sorted((clone / "workflow" / "rules").glob("*.smk")):
        for name in RULE.findall(smk.read_text()):
            stages[name] = smk.stem.removesuffix("_common")
    return stages


def stage_table(clone: Path) -> pd.DataFrame:
    """Jobs, wall and CPU seconds per stage from the run's benchmark files."""
    stages = rule_stages(clone)
    jobs = read_job_benchmarks(clone / "results" / "benchmarks")
    jobs["stage"] = jobs["rule"].map(stages).fillna("other")
    grouped = jobs.groupby("stage").agg(
        jobs=("rule", "size"), wall_s=("s", "sum"), cpu_s=("cpu_time", "sum")
    )
    return grouped.sort_index()


def clone_at(revision: str, workdir: Path) -> tuple[Path, str]:
    """A fresh clone of this repository checked out at `revision`, and its commit."""
    clone = workdir / re.sub(r"\W", "_", revision)
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", revision], check=True)
    commit = subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return clone, commit


def resolve(revision: str) -> str:
    """The short commit a revision names in this repository."""
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", revision],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def save(result: RunResult, path: Path) -> None:
    """Keep one revision's result as JSON (stages as records)."""
    fields = {k: v for k, v in vars(result).items() if k != "stages"}
    fields["stages"] = result.stages.reset_index().to_dict(orient="records")
    path.write_text(json.dumps(fields, indent=1))


def load(path: Path) -> RunResult:
    """A result kept by `save`."""
    fields = json.loads(path.read_text())
    stages = pd.DataFrame(fields.pop("stages")).set_index("stage")
    return RunResult(**fields, stages=stages)


def measured(revision: str, workdir: Path, cores: int) -> RunResult:
    """This revision's result: reused from the scratch folder, or run now and kept there."""
    kept = workdir / f"{resolve(revision)}.json"
    if kept.exists():
        print(f"{revision}: reusing {kept}", file=sys.stderr)
        result = load(kept)
        result.revision = revision
        return result
    result = run_default(revision, workdir, cores)
    save(result, kept)
    return result


def run_default(revision: str, workdir: Path, cores: int) -> RunResult:
    """Clone, count the scheduled jobs, run the default workflow under GNU time."""
    clone, commit = clone_at(revision, workdir)
    snakemake = [str(Path(sys.executable).with_name("snakemake")), "--cores", str(cores)]
    # The clone's own library, not the editable install of this checkout.
    env = {**os.environ, "PYTHONPATH": str(clone / "src")}
    dry = subprocess.run(
        [*snakemake, "-n", "--quiet", "rules"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    planned = int(JOB_COUNT.search(dry.stdout + dry.stderr).group(1))
    print(f"{revision} ({commit}): {planned} jobs planned; running ...", file=sys.stderr)
    load_before = os.getloadavg()[0]
    loads: list[float] = []
    done = threading.Event()

    def sample_load() -> None:
        # The 1-minute load average every 10 s: the run itself makes ~2 on 2 cores; more means
        # other work shared the machine, and the report says so.
        while not done.wait(10):
            loads.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample_load, daemon=True)
    sampler.start()
    start = time.perf_counter()
    timed = subprocess.run(
        ["/usr/bin/time", "-v", *snakemake, "--quiet", "rules", "host", "reason"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if timed.returncode != 0:
        raise SystemExit(f"{revision}: the default run failed:\n{timed.stderr[-4000:]}")
    found = {key: float(pattern.search(timed.stderr).group(1)) for key, pattern in GNU_TIME.items()}
    # Checkpoints add jobs once they have run: the executed count is the last progress line's.
    executed = STEPS_DONE.findall(timed.stderr)
    return RunResult(
        revision=revision,
        commit=commit,
        jobs_planned=planned,
        jobs=int(executed[-1][1]) if executed else planned,
        wall_s=wall,
        cpu_s=found["user_s"] + found["system_s"],
        peak_rss_mib=found["peak_rss_mib"] / 1024,
        date=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        load_before=load_before,
        load_after=os.getloadavg()[0],
        load_mean=float(sum(loads) / len(loads)) if loads else float("nan"),
        load_max=max(loads, default=float("nan")),
        stages=stage_table(clone),
    )


def report(results: list[RunResult], cores: int) -> str:
    """The Markdown report: totals, then per stage, with the last/first ratio."""
    first, last = results[0], results[-1]
    heads = [f"{r.revision} ({r.commit})" for r in results]
    lines = [
        "# The default run end to end",
        "",
        f"- Machine: {machine_description()}; `snakemake --cores {cores}`",
        *(
            f"- {r.revision} ({r.commit}): run {r.date}; 1-minute load average {r.load_before:.1f}"
            f" before, {r.load_mean:.1f} on average during the run (at most {r.load_max:.1f}),"
            f" {r.load_after:.1f} after"
            for r in results
        ),
        "",
        "| | " + " | ".join(heads) + " | last / first |",
        "| --- |" + " ---: |" * (len(results) + 1),
    ]
    for label, attribute, digits in (
        ("jobs planned (dry run, before checkpoints)", "jobs_planned", 0),
        ("jobs run", "jobs", 0),
        ("wall time (min)", "wall_s", 1),
        ("CPU time (min)", "cpu_s", 1),
    ):
        scale = 1 if attribute.startswith("jobs") else 60
        values = [getattr(r, attribute) / scale for r in results]
        ratio = values[-1] / values[0] if values[0] else float("nan")
        cells = " | ".join(f"{v:.{digits}f}" for v in values)
        lines.append(f"| {label} | {cells} | {ratio:.2f} |")
    lines += [
        "",
        "Per stage, from the rules' `benchmark:` files: jobs, the sum of their wall seconds",
        "(exact) and of their CPU seconds. Snakemake samples a job's CPU (every 0.5 s for 15 s,",
        "then every 30 s), so the CPU column is a lower bound that misses up to 30 s of a longer",
        "job; the last row is the GNU-time total less that column.",
        "",
        "| stage | "
        + " | ".join(f"jobs, wall s, CPU s ({h})" for h in heads)
        + " | wall last / first |",
        "| --- |" + " ---: |" * (len(results) + 1),
    ]
    stages = sorted(set().union(*(r.stages.index for r in results)))
    for stage in stages:
        cells = []
        for result in results:
            row = result.stages.reindex([stage]).iloc[0]
            cells.append(
                "-"
                if pd.isna(row["jobs"])
                else f"{int(row['jobs'])}, {row['wall_s']:.0f}, {row['cpu_s']:.0f}"
            )
        base = first.stages["wall_s"].get(stage, float("nan"))
        ratio = last.stages["wall_s"].get(stage, float("nan")) / base if base else float("nan")
        # A stage without benchmark files in the baseline has no ratio (its CPU was in the
        # last row there).
        shown = "-" if pd.isna(ratio) or stage not in first.stages.index else f"{ratio:.2f}"
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {shown} |")
    # Snakemake's own parse and scheduling, and the CPU that the jobs' sampling missed.
    outside = [r.cpu_s - r.stages["cpu_s"].sum() for r in results]
    cells = " | ".join(f"-, -, {value:.0f}" for value in outside)
    ratio = outside[-1] / outside[0] if outside[0] else float("nan")
    lines.append(f"| not in the CPU column | {cells} | CPU {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the default workflow at each revision and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--revisions", nargs="+", required=True, help="git revisions, baseline first"
    )
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "default_run_benchmark.md"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (kept)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hccrad-default-run-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = [measured(revision, workdir, args.cores) for revision in args.revisions]
    args.out.write_text(report(results, args.cores))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
