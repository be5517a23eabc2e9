"""Quality-control figures of a cohort: mid-tumour slices of each phase with the mask outlined."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd

from hccrad.cohorts.phantom import LABELS
from hccrad.cohorts.sheet import image_columns
from hccrad.figures.style import DOUBLE_COLUMN_MM, LABEL_COLOURS, journal_subplots


def qc_patients(sheet: pd.DataFrame, per_centre: int, excluded: Collection[str] = ()) -> list[str]:
    """The first ``per_centre`` patients of each centre not excluded, in sheet order."""
    # An excluded patient's files may be unreadable (imaging.on_error: exclude): show the next.
    kept = sheet.drop(index=[p for p in excluded if p in sheet.index])
    if kept.empty:
        raise ValueError(
            f"every patient of the sheet is excluded ({len(sheet)}): no image to show; see the "
            "cohort's exclusions.tsv for each patient's file and fix"
        )
    return [
        pid for _, group in kept.groupby("centre", sort=True) for pid in group.index[:per_centre]
    ]


def tumour_slice(mask: np.ndarray) -> int:
    """The axial slice with the most tumour voxels (the middle slice if there is no tumour)."""
    counts = (mask == LABELS["tumour"]).sum(axis=(0, 1))
    return int(np.argmax(counts)) if counts.any() else mask.shape[2] // 2


def display_window(values: np.ndarray) -> tuple[float, float]:
    """Robust grey-level window (1st-99th percentile) for one slice."""
    low, high = np.percentile(values, [1, 99])
    return float(low), float(max(high, low + 1e-6))


def qc_figure(
    sheet: pd.DataFrame, patients: Sequence[str], base_dir: str | Path = "."
) -> plt.Figure:
    """Grid of patients (rows) x phases (columns) with liver and tumour contours."""
    columns = image_columns(sheet)
    # Square image cells across a double column, plus room for the row labels and legend.
    cell_mm = (DOUBLE_COLUMN_MM - 25.0) / len(columns)
    figure, axes = journal_subplots(2, cell_mm * len(patients) + 15.0, len(patients), len(columns))
    for row, patient in enumerate(patients):
        record = sheet.loc[patient]
        mask_image = nib.load(Path(base_dir) / record["mask"])
        mask = np.asarray(mask_image.dataobj)
        k = tumour_slice(mask)
        spacing = mask_image.header.get_zooms()[:3]
        for col, column in enumerate(columns):
            image = np.asarray(nib.load(Path(base_dir) / record[column]).dataobj)[:, :, k]
            axis = axes[row, col]
            low, high = display_window(image)
            # Array axis 0 runs from patient right to left, axis 1 anterior to posterior:
            # transposed, this is the radiological view (patient right on the viewer's left).
            extent = (0, image.shape[0] * spacing[0], image.shape[1] * spacing[1], 0)
            axis.imshow(image.T, cmap="gray", vmin=low, vmax=high, extent=extent)
            # Contours on voxel centres in the same millimetre frame as the image.
            centres_x = (np.arange(image.shape[0]) + 0.5) * spacing[0]
            centres_y = (np.arange(image.shape[1]) + 0.5) * spacing[1]
            for label, colour in LABEL_COLOURS.items():
                inside = (mask[:, :, k] >= LABELS[label]).T.astype(float)
                if inside.any():
                    axis.contour(
                        centres_x, centres_y, inside, levels=[0.5], colors=colour, linewidths=0.6
                    )
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(column.removeprefix("image_").replace("_", " "))
            if col == 0:
                axis.set_ylabel(f"{patient}\n{record['centre']}, {record['split']}\nslice {k}")
    # A 50 mm scale bar on the first panel; axes are in millimetres.
    first = axes[0, 0]
    first.plot([5, 55], [first.get_ylim()[0] - 8] * 2, color="white", linewidth=2)
    first.text(30, first.get_ylim()[0] - 12, "50 mm", color="white", ha="center", va="bottom")
    handles = [plt.Line2D([], [], color=c, label=name) for name, c in LABEL_COLOURS.items()]
    figure.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
    return figure


def crops_figure(crops: dict[str, Path], sheet: pd.DataFrame) -> plt.Figure:
    """Mid-slices of each patient's largest-tumour crop, every phase, tumour outlined."""
    patients = list(crops)
    first = np.load(crops[patients[0]])
    phases = [str(p) for p in first["phases"]]
    cell_mm = min((DOUBLE_COLUMN_MM - 25.0) / len(phases), 38.0)
    figure, axes = journal_subplots(2, cell_mm * len(patients) + 18.0, len(patients), len(phases))
    for row, patient in enumerate(patients):
        crop = np.load(crops[patient])
        image, mask = crop["image"], crop["mask"]
        k = tumour_slice(np.moveaxis(mask, 0, -1))  # crops are (z, y, x)
        _, dy, dx = crop["spacing_zyx"]
        for col, phase in enumerate(phases):
            axis = axes[row, col]
            values = image[col, k]
            low, high = display_window(values)
            extent = (0, values.shape[1] * dx, values.shape[0] * dy, 0)
            axis.imshow(values, cmap="gray", vmin=low, vmax=high, extent=extent)
            inside = (mask[k] == LABELS["tumour"]).astype(float)
            if inside.any():
                xs = (np.arange(values.shape[1]) + 0.5) * dx
                ys = (np.arange(values.shape[0]) + 0.5) * dy
                axis.contour(
                    xs, ys, inside, levels=[0.5], colors=LABEL_COLOURS["tumour"], linewidths=0.6
                )
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(phase.replace("_", " "))
            if col == 0:
                axis.set_ylabel(f"{patient}\n{sheet.loc[patient, 'centre']}")
    figure.suptitle(
        f"Tumour-centred crops after resampling and normalisation\n({dx:g} mm voxels, "
        f"{image.shape[-1] * dx:g} mm box)"
    )
    return figure
