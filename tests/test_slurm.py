"""The Slurm profile, run for real: a one-node Slurm cluster on loopback runs the tiny config.

The cluster (tests/slurm_cluster.py) is installed with apt-get when missing and started as
root; where that is impossible the cluster test is skipped with the reason. Its jobs must show
up in Slurm's records, and its outputs must equal a local run's, byte for byte.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, tiny_config
from slurm_cluster import SlurmCluster, SlurmUnavailableError, slurm_cluster
from test_workflow import digests

pytestmark = pytest.mark.slurm

# The simulation, the sheet (a checkpoint) and the cohort figures: 6 jobs over 4 DAG levels.
TARGETS = (
    "results/sim_tace/sheet.tsv",
    "results/sim_tace/qc/cohort_qc.png",
    "results/sim_tace/table1.tsv",
)
# What this cluster needs beyond the profile: it has no slurmdbd, so squeue (not sacct) must
# answer status queries; its jobs are short, so the first status check comes early; and the
# plugin's per-job logs are kept as evidence of where the jobs ran.
CLUSTER_ONLY = (
    "--slurm-status-command=squeue",
    "--slurm-init-seconds-before-status-checks=2",
    "--slurm-keep-successful-logs",
)
# Hard limit for each Snakemake run (the Slurm one takes about 2 minutes here).
TIMEOUT_S = 480


def profile(name: str) -> dict:
    """A profile's config.yaml as a dict."""
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def workflow_rules() -> dict[str, str]:
    """Every rule and checkpoint of workflow/rules/*.smk with the text of its block."""
    blocks = {}
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        parts = re.split(r"^(?=(?:rule|checkpoint) \w+:)", path.read_text(), flags=re.M)
        for part in parts:
            match = re.match(r"(?:rule|checkpoint) (\w+):", part)
            if match:
                blocks[match.group(1)] = part
    return blocks


def test_workflow_profile_overrides_nothing_of_the_slurm_profile():
    # Snakemake always loads profiles/default too, and its keys win over --profile's.
    shared = set(profile("default")) & set(profile("slurm"))
    assert not shared, f"profiles/default would override profiles/slurm's {sorted(shared)}"


def test_slurm_profile_settings():
    slurm = profile("slurm")
    assert slurm["executor"] == "slurm"
    assert slurm["jobs"] >= 10 and slurm["retries"] >= 1 and slurm["latency-wait"] >= 30
    assert {"mem_mb", "runtime"} <= set(slurm["default-resources"])
    for rule, resources in slurm["set-resources"].items():
        assert {"mem_mb", "runtime"} <= set(resources), rule
        for key in ("mem_mb", "runtime"):
            # Retries get more: the value must grow with the attempt.
            first, second = (eval(str(resources[key]), {"attempt": a}) for a in (1, 2))
            assert 0 < first < second, (rule, key)


def test_slurm_profile_names_existing_rules_and_asks_gpus_for_gpu_rules():
    rules = workflow_rules()
    per_rule = profile("slurm")["set-resources"]
    assert set(per_rule) <= set(rules), set(per_rule) - set(rules)
    gpu_rules = {name for name, block in rules.items() if re.search(r"\bgpu\s*=", block)}
    for rule in gpu_rules:
        assert per_rule.get(rule, {}).get("gpu", 0) >= 1, f"{rule} gets no GPU on Slurm"


def test_slurm_profile_resources_are_the_documented_ones():
    # benchmarks/resources.md derives each rule's values from the measurements; keep in step.
    text = (ROOT / "benchmarks" / "resources.md").read_text()
    documented = {}
    for line in text.split("## From measurements to profiles/slurm/config.yaml")[1].splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 6 and cells[-1].isdigit():
            documented[cells[0].removesuffix(" (GPU)")] = (int(cells[-2]), int(cells[-1]))
    per_rule = profile("slurm")["set-resources"]
    in_profile = {
        rule: tuple(eval(str(values[key]), {"attempt": 1}) for key in ("mem_mb", "runtime"))
        for rule, values in per_rule.items()
    }
    assert in_profile == documented


@pytest.fixture(scope="module")
def cluster():
    """A running one-node cluster (skipped where Slurm cannot be installed or started)."""
    try:
        with slurm_cluster() as live:
            yield live
    except SlurmUnavailableError as reason:
        pytest.skip(f"no Slurm cluster on this machine: {reason}")


def start(workdir: Path, snakemake_bin: str, options: list[str], env: dict) -> subprocess.Popen:
    """Start Snakemake on the tiny config and TARGETS in ``workdir`` (its own process group)."""
    workdir.mkdir(parents=True)
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(7)))
    args = [snakemake_bin, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    args += ["--configfile", str(config), *options, *TARGETS]
    log = (workdir / "snakemake.out").open("w")
    return subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
    )


def finish(run: subprocess.Popen, workdir: Path, deadline: float) -> None:
    """Wait for a run until ``deadline``; kill its process group if it is late; check it."""
    try:
        code = run.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        code = f"killed after {TIMEOUT_S} s"
    output = (workdir / "snakemake.out").read_text(errors="replace")
    assert code == 0, f"snakemake in {workdir}: {code}\n{output[-6000:]}"


@pytest.fixture(scope="module")
def runs(cluster: SlurmCluster, tmp_path_factory, snakemake_bin) -> dict[str, Path]:
    """The same targets through profiles/slurm and locally, side by side."""
    base = tmp_path_factory.mktemp("slurm")
    slurm_options = ["--profile", str(ROOT / "profiles" / "slurm"), *CLUSTER_ONLY]
    local_env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    started = time.monotonic()
    slurm = start(base / "slurm", snakemake_bin, slurm_options, cluster.env)
    local = start(base / "local", snakemake_bin, ["--cores", "1"], local_env)
    deadline = started + TIMEOUT_S
    try:
        finish(local, base / "local", deadline)
    finally:
        finish(slurm, base / "slurm", deadline)
    return {"slurm": base / "slurm", "local": base / "local"}


def snakemake_jobs(cluster: SlurmCluster, workdir: Path) -> list[dict[str, str]]:
    """The cluster's records of the jobs submitted from ``workdir``."""
    return [job for job in cluster.jobs() if job["WorkDir"] == str(workdir)]


def rule_of(job: dict[str, str]) -> str:
    """The rule of a job, from the comment the plugin sets (rule_<rule>_wildcards_<...>)."""
    return job["Comment"].removeprefix("rule_").split("_wildcards_")[0]


def minutes(limit: str) -> int:
    """A Slurm time limit ([days-]hours:minutes:seconds) in whole minutes."""
    days, _, clock = limit.rpartition("-")
    hours, mins, secs = (int(part) for part in clock.split(":"))
    return (int(days or 0) * 24 + hours) * 60 + mins + secs // 60


def executed(workdir: Path) -> tuple[Counter, Counter]:
    """Jobs per rule that a run's Snakemake log shows started locally and remotely."""
    (log,) = (workdir / ".snakemake/log").glob("*.snakemake.log")
    local, remote = Counter(), Counter()
    for line in log.read_text().splitlines():
        match = re.match(r"(local)?(?:rule|checkpoint) (\w+):$", line)
        if match:
            (local if match.group(1) else remote)[match.group(2)] += 1
    return local, remote


def test_every_job_ran_through_slurm_and_completed(cluster, runs):
    jobs = snakemake_jobs(cluster, runs["slurm"])
    assert {job["JobState"] for job in jobs} == {"COMPLETED"}, jobs
    # The same jobs as the local run, each one a Slurm job, none run on the submitting host.
    ran_locally, _ = executed(runs["local"])
    assert sum(ran_locally.values()) >= 6
    assert {"simulate_patients", "render_images", "gather_sheet"} <= set(ran_locally)
    assert Counter(rule_of(job) for job in jobs) == ran_locally
    assert executed(runs["slurm"]) == (Counter(), ran_locally)
    # slurmctld's own completion records (jobcomp/filetxt) list the same jobs.
    records = (cluster.root / "log/jobcomp.txt").read_text().splitlines()
    ours = [r for r in records if f"WorkDir={runs['slurm']} " in r]
    assert len(ours) == len(jobs) and all("JobState=COMPLETED" in r for r in ours)
    # The plugin's log of each job, named by its Slurm job id.
    logs = {p.stem for p in (runs["slurm"] / ".snakemake/slurm_logs").rglob("*.log")}
    assert {job["JobId"] for job in jobs} <= logs


def test_jobs_got_the_profiles_resources(cluster, runs):
    per_rule = profile("slurm")["set-resources"]
    jobs = [job for job in snakemake_jobs(cluster, runs["slurm"]) if rule_of(job) in per_rule]
    assert jobs, "no job of a rule that profiles/slurm sets resources for"
    for job in jobs:
        wanted = {k: eval(str(v), {"attempt": 1}) for k, v in per_rule[rule_of(job)].items()}
        assert f"mem={wanted['mem_mb']}M" in job["TRES"], job
        assert minutes(job["TimeLimit"]) == wanted["runtime"], job


def test_slurm_outputs_equal_the_local_run(runs):
    slurm, local = digests(runs["slurm"] / "results"), digests(runs["local"] / "results")
    assert slurm.keys() == local.keys()
    assert [name for name in slurm if slurm[name] != local[name]] == []
    assert "sim_tace/sheet.tsv" in slurm and "sim_tace/qc/cohort_qc.png" in slurm
