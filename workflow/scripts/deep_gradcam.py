"""Grad-CAM maps of the DLTR network for a few held-out patients per centre (drawn later)."""

import torch

from hccrad.cohorts.sheet import read_patients, read_sheet
from hccrad.core.runlog import log_to
from hccrad.deep import dltr
from hccrad.deep.explain import grad_cam_panels
from hccrad.deep.networks import load_model

log = log_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
config = dltr.deep_config(snakemake.params.deep, snakemake.params.seed)
gradcam = snakemake.params.deep["gradcam"]
model = load_model(snakemake.input.weights, snakemake.input.model, device=config.device)
sheet = read_sheet(snakemake.input.sheet)
# Held-out patients only: their score comes from the very network whose attention is shown.
held_out = sheet.loc[sheet["split"] != "train"]
crops, _ = dltr.cohort_crops(
    dltr.prepared_folders(snakemake.input.prepared), list(held_out.index), config
)
scores = read_patients(snakemake.input.scores, index=False)
scores = scores.set_index("patient_id")[dltr.DLTR_SCORE]
panels = grad_cam_panels(
    model,
    crops,
    held_out,
    scores,
    patients_per_centre=gradcam["patients_per_centre"],
    phase=gradcam.get("phase"),
    layer=gradcam.get("layer", "auto"),
    endpoint=snakemake.wildcards.endpoint,
)
panels.save(snakemake.output.panels)
log.info("Grad-CAM of %s (%s): %s", panels.architecture, panels.layer, panels.patients)
