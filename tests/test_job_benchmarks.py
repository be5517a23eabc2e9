"""Reading a run's benchmark files back (benchmarks/resources.py, default_run_benchmark.py)."""

from __future__ import annotations

from pathlib import Path

from hccrad.core.job_benchmarks import read_job_benchmarks

HEADER = "s\th:m:s\tmax_rss\tcpu_time\n"


def test_each_file_is_one_job_named_by_its_rule_folder_and_path(tmp_path: Path) -> None:
    for relative, seconds in (("km_figure/sim_tace/response_os_clinical", 4.5), ("fit/x", 2.0)):
        path = tmp_path / f"{relative}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + f"{seconds}\t0:00:04\t300.0\t{seconds / 2}\n")
    (tmp_path / "km_figure" / "notes.txt").write_text("not a benchmark")
    table = read_job_benchmarks(tmp_path).set_index("job")
    assert sorted(table.index) == ["sim_tace/response_os_clinical", "x"]
    assert table.loc["x", "rule"] == "fit" and table.loc["x", "s"] == 2.0
    assert table.loc["sim_tace/response_os_clinical", "rule"] == "km_figure"
    assert table.loc["sim_tace/response_os_clinical", "cpu_time"] == 2.25


def test_a_run_without_benchmark_files_gives_an_empty_table(tmp_path: Path) -> None:
    assert read_job_benchmarks(tmp_path).empty
