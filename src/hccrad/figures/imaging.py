"""The QC image of a prepared patient: an axial slice of every phase, liver and tumour outlined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from hccrad.core.labels import BACKGROUND_LABEL, LIVER_LABEL, TUMOUR_LABEL
from hccrad.imaging.crops import tumour_components
from hccrad.imaging.read import ImageQCError
from hccrad.imaging.transform import orient_patient
from hccrad.imaging.volumes import PatientVolumes

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
LIVER_COLOUR = "#56B4E9"
TUMOUR_COLOUR = "#E69F00"


def write_qc_png(
    volumes: PatientVolumes,
    path: str | Path,
    *,
    tumour_label: int = TUMOUR_LABEL,
    intensity_label: str = "intensity",
    dpi: int = 200,
) -> Path:
    """Axial slice through the largest tumour's centre (else the liver's), every phase, contours."""
    oriented = orient_patient(volumes)
    components = tumour_components(oriented.mask, tumour_label)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(components)
    through = "the largest tumour"
    if not stats.GetLabels():
        # A liver-only mask (tumours still to be segmented): centre on the liver instead.
        stats.Execute(sitk.Cast(sitk.Greater(oriented.mask, BACKGROUND_LABEL), sitk.sitkUInt8))
        through = "the liver (no tumour label)"
    if not stats.GetLabels():
        raise ImageQCError(
            volumes.patient_id,
            volumes.sources.get("mask"),
            "the mask has no liver or tumour voxels to centre the QC slice on",
            "segment the liver (label 1) and tumour(s) (label 2), or exclude the patient",
        )
    centre = stats.GetCentroid(1)
    k = round(oriented.mask.TransformPhysicalPointToContinuousIndex(centre)[2])
    mask_slice = sitk.GetArrayViewFromImage(oriented.mask)[k]
    sx, sy, _ = oriented.mask.GetSpacing()
    ny, nx = mask_slice.shape
    ox, oy, oz = oriented.mask.TransformIndexToPhysicalPoint([0, 0, k])
    # Extent in mm gives the true aspect ratio for anisotropic voxels. In LPS, x grows to the
    # patient's left and y posteriorly: rows top-down = anterior at the top (radiological view).
    extent = (ox - sx / 2, ox + (nx - 0.5) * sx, oy + (ny - 0.5) * sy, oy - sy / 2)

    n = len(oriented.phases)
    # A fixed layout: constrained layout took 60% of a patient's preparation time.
    fig = Figure(figsize=(3.2 * n, 3.6), dpi=dpi)
    fig.subplots_adjust(left=0.07, right=0.97, bottom=0.2, top=0.85, wspace=0.45)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (phase, image) in zip(axes, oriented.images.items(), strict=True):
        values = sitk.GetArrayViewFromImage(image)[k]
        low, high = np.percentile(values, [1, 99])
        shown = ax.imshow(values, cmap="gray", vmin=low, vmax=high, extent=extent)
        ax.contour(
            mask_slice >= LIVER_LABEL,
            levels=[0.5],
            colors=LIVER_COLOUR,
            linewidths=0.8,
            extent=extent,
            origin="upper",
        )
        ax.contour(
            mask_slice == tumour_label,
            levels=[0.5],
            colors=TUMOUR_COLOUR,
            linewidths=1.0,
            extent=extent,
            origin="upper",
        )
        ax.set_title(phase.replace("_", " "), fontsize=10)
        ax.set_xlabel("x (mm, R\u2192L)", fontsize=8)
        ax.tick_params(labelsize=7)
        colorbar = fig.colorbar(shown, ax=ax, shrink=0.8)
        colorbar.set_label(intensity_label, fontsize=8)
        colorbar.ax.tick_params(labelsize=7)
    axes[0].set_ylabel("y (mm, A\u2192P)", fontsize=8)
    handles = [
        Line2D([], [], color=LIVER_COLOUR, label="liver"),
        Line2D([], [], color=TUMOUR_COLOUR, label="tumour"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(
        f"{volumes.patient_id}: axial slice {k} (z = {oz:.1f} mm) through {through}",
        fontsize=10,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
