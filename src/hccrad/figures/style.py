"""One figure style for every plot of the workflow: fonts, sizes, colours and file formats."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: Snakemake jobs and CI have no display
import matplotlib.pyplot as plt

# Colour per model, used by every figure so a model is recognisable
# across ROC, calibration, decision-curve and survival plots. Okabe-Ito, safe for colour blindness.
MODEL_COLOURS: dict[str, str] = {
    "clinical": "#E69F00",
    "radiomics": "#56B4E9",
    "radiomics_lasso": "#0072B2",
    "radiomics_ridge": "#332288",
    "DLTR": "#009E73",
    "DLTR_MLP": "#D55E00",
    "DLR": "#CC79A7",
    "treat_all": "#7F7F7F",
    "treat_none": "#000000",
}
LABEL_COLOURS: dict[str, str] = {"liver": "#F0E442", "tumour": "#D55E00"}
RC_PARAMS: dict[str, object] = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    # Fixed metadata and hash salt make the vector files byte-reproducible.
    "svg.hashsalt": "hccrad",
    "pdf.fonttype": 42,
}


def apply_style() -> None:
    """Set the workflow's matplotlib style for the current process."""
    plt.rcParams.update(RC_PARAMS)


def save_figure(figure: plt.Figure, png_path: str | Path) -> list[Path]:
    """Save a figure as 300 dpi PNG and a vector PDF beside it, without timestamps."""
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    pdf_path = png_path.with_suffix(".pdf")
    figure.savefig(png_path, metadata={"Software": None})
    figure.savefig(pdf_path, metadata={"Creator": None, "Producer": None, "CreationDate": None})
    plt.close(figure)
    return [png_path, pdf_path]
