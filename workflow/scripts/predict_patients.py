"""Score a sheet of new patients with the endpoint's bundle: one folder of outputs each."""

from hccrad.bundle.predict import describe, predict_patients
from hccrad.bundle.store import load_bundle
from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.figures.deep import grad_cam_figure
from hccrad.figures.imaging import write_qc_png
from hccrad.figures.patient import render_patient_report
from hccrad.figures.style import save_figure

log = log_to(snakemake.log[0])
scores = predict_patients(
    load_bundle(snakemake.input.bundle),
    read_sheet(snakemake.input.sheet),
    snakemake.output.patients,
    masks=snakemake.params.masks,
    risk_outcome_name=snakemake.params.risk_outcome,
    draw_gradcam=lambda panels, png: save_figure(grad_cam_figure(panels), png),
    draw_qc=write_qc_png,
    render_report=render_patient_report if snakemake.params.report else None,
    threads=snakemake.threads,
    log=log,
)
scores.to_csv(snakemake.output.predictions, sep="\t", index=False, float_format="%.6g")
for line in describe(scores):
    log.info("%s", line)
