"""The Grad-CAM figure, from the maps that deep_gradcam saved."""

from hccrad.core.runlog import log_to
from hccrad.deep.cam_panels import GradCamPanels
from hccrad.figures.deep import grad_cam_figure
from hccrad.figures.style import save_figure

log = log_to(snakemake.log[0])
panels = GradCamPanels.load(snakemake.input.panels)
save_figure(grad_cam_figure(panels), snakemake.output.png)
log.info("Grad-CAM figure of %d patients", len(panels.patients))
