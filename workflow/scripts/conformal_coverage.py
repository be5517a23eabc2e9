"""Each patient's conformal set and interval, and their coverage per model and cohort."""

import json
from pathlib import Path

from hccrad.cohorts.sheet import read_patients
from hccrad.core.runlog import log_to
from hccrad.models.conformal import conformal_intervals
from hccrad.reporting.conformal import coverage_table

log = log_to(snakemake.log[0])
calibration = json.loads(Path(snakemake.input.conformal).read_text())
predictions = read_patients(snakemake.input.predictions, index=False)
intervals = conformal_intervals(calibration, predictions)
intervals.to_csv(snakemake.output.intervals, sep="\t", index=False, float_format="%.6g")
coverage = coverage_table(intervals)
coverage.to_csv(snakemake.output.coverage, sep="\t", index=False, float_format="%.6g")
for row in coverage.itertuples():
    log.info(
        "%s %s: coverage %.3f (%d/%d), nominal %.2f",
        row.model,
        row.cohort,
        row.coverage,
        row.covered,
        row.n,
        row.coverage_nominal,
    )
