"""Per-rule memory and run time for the Slurm profile: measured on the default run, then scaled.

Reads the `benchmark:` files of a default workflow run (results/benchmarks/<rule>/...) and
summarises each rule: jobs, wall-clock and CPU seconds, peak resident memory. The default
cohort's images are small (about 0.5 M voxels a phase); real CT series are 512 x 512 x 87
slices (median) to 225 (99th percentile) in HCC-TACE-Seg. So it also measures the one rule
whose cost follows the input's voxel count, image preparation, on a simulated patient
resampled to real CT grids, each size in a fresh process (peak RSS as Slurm would count it).
Writes a Markdown report; profiles/slurm/config.yaml takes its values from it.

    .venv/bin/python benchmarks/resources.py --out benchmarks/resources.md
    .venv/bin/python benchmarks/resources.py --no-scaling   # the summary alone, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk  # noqa: N813
import yaml

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.config import radiomics_for
from hccrad.core.job_benchmarks import read_job_benchmarks
from hccrad.core.versions import machine_description

# Real CT grids: 0.7 mm in plane (512 x 512 over a 360 mm field) and slice counts spanning
# HCC-TACE-Seg's series (IDC: median 87, 90th percentile 125, 99th 225 slices).
REAL_GRIDS_MM = ((0.7, 0.7, 2.5), (0.7, 0.7, 1.25), (0.7, 0.7, 0.625))
# Prepared spacings whose radiomics cost is measured besides the config's: the real-data
# configs' 1.5 mm and the 1 mm of IBSI-style studies.
RADIOMICS_SPACINGS_MM = ((1.5, 1.5, 1.5), (1.0, 1.0, 1.0))
# The shipped parameters (original image only) and the full ones (LoG + wavelet).
PARAMS = (
    "resources/pyradiomics/mri_zscore_original.yaml",
    "resources/pyradiomics/mri_zscore.yaml",
)

# Each measurement runs in a fresh process, so that its peak RSS is what Slurm would count.
PREPARE = """
import json, resource, sys, time
import pandas as pd
from hccrad.imaging.prepare import prepare_patient

row = pd.Series(json.loads(sys.argv[1]))
imaging = json.loads(sys.argv[2])
start = time.perf_counter()
prepare_patient(sys.argv[4], row, imaging, "mri", sys.argv[3])
seconds = time.perf_counter() - start
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak_mib}))
"""
RADIOMICS = """
import json, resource, sys, time
from hccrad.radiomics.patient import patient_radiomics

radiomics = json.loads(sys.argv[3])
start = time.perf_counter()
spacing = json.loads(sys.argv[5])
features, _ = patient_radiomics(sys.argv[1], sys.argv[2], sys.argv[4], radiomics, spacing)
seconds = time.perf_counter() - start
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "features": features.shape[1]}))
"""


def read_benchmarks(folder: Path) -> pd.DataFrame:
    """Every benchmark file under ``folder``, one row per job; stops when there is none."""
    table = read_job_benchmarks(folder)
    if table.empty:
        raise SystemExit(f"no benchmark files under {folder}: run the workflow first")
    return table


def summarise(benchmarks: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, wall-clock and CPU seconds (median, max), peak RSS in MiB (median, max)."""
    grouped = benchmarks.groupby("rule")
    summary = pd.DataFrame(
        {
            "jobs": grouped.size(),
            "wall_s_median": grouped["s"].median(),
            "wall_s_max": grouped["s"].max(),
            "cpu_s_median": grouped["cpu_time"].median(),
            "cpu_s_max": grouped["cpu_time"].max(),
            "rss_mib_median": grouped["max_rss"].median(),
            "rss_mib_max": grouped["max_rss"].max(),
        }
    )
    return summary.round(1)


def resampled_copy(row: pd.Series, spacing: tuple[float, ...], folder: Path) -> pd.Series:
    """The patient's phases (linear) and mask (nearest) on a finer grid, written to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = row.copy()
    columns = [c for c in row.index if c.startswith("image_")] + ["mask"]
    for column in columns:
        image = sitk.ReadImage(str(row[column]))
        size = [
            round(n * s / t)
            for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing, strict=True)
        ]
        interpolator = sitk.sitkNearestNeighbor if column == "mask" else sitk.sitkLinear
        fine = sitk.Resample(
            image,
            size,
            sitk.Transform(),
            interpolator,
            image.GetOrigin(),
            spacing,
            image.GetDirection(),
            0,
            image.GetPixelID(),
        )
        path = folder / f"{column}.nii.gz"
        sitk.WriteImage(fine, str(path))
        out[column] = str(path)
    return out


def in_fresh_process(code: str, *args: str) -> dict[str, float]:
    """Run a measurement snippet in a new Python; return the JSON it prints last."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def scaling(sheet: Path, config: dict[str, Any]) -> pd.DataFrame:
    """Image preparation of one simulated patient on its own grid and on real CT grids."""
    table = read_sheet(sheet)
    patient = table.index[table["split"] == "train"][0]
    row = table.loc[patient]
    native = tuple(sitk.ReadImage(str(row["mask"])).GetSpacing())
    rows = []
    with tempfile.TemporaryDirectory(prefix="hccrad-resources-") as tmp:
        for spacing in (native, *REAL_GRIDS_MM):
            folder = Path(tmp) / "x".join(f"{s:g}" for s in spacing)
            source = row if spacing == native else resampled_copy(row, spacing, folder)
            size = sitk.ReadImage(str(source["mask"])).GetSize()
            measured = in_fresh_process(
                PREPARE,
                source.to_json(),
                json.dumps(config["imaging"]),
                str(folder / "prepared"),
                str(patient),
            )
            rows.append(
                {
                    "grid_mm": " x ".join(f"{s:g}" for s in spacing),
                    "voxels": " x ".join(str(n) for n in size),
                    "mvoxels_per_phase": round(float(np.prod(size)) / 1e6, 1),
                    "prepare_s": round(measured["seconds"], 1),
                    "peak_rss_mib": round(measured["peak_mib"]),
                }
            )
    return pd.DataFrame(rows)


def radiomics_cost(
    sheet: Path, config: dict[str, Any], spacings: tuple[tuple[float, ...], ...]
) -> pd.DataFrame:
    """One patient's radiomics: shipped and full (LoG + wavelet) parameters at each spacing."""
    table = read_sheet(sheet)
    patient = table.index[table["split"] == "train"][0]
    row = table.loc[patient]
    rows = []
    with tempfile.TemporaryDirectory(prefix="hccrad-resources-") as tmp:
        for spacing in spacings:
            imaging = {**config["imaging"], "spacing_mm": list(spacing)}
            folder = Path(tmp) / f"prepared_{spacing[0]:g}mm"
            in_fresh_process(PREPARE, row.to_json(), json.dumps(imaging), str(folder), patient)
            for params in PARAMS:
                measured = in_fresh_process(
                    RADIOMICS,
                    str(patient),
                    str(folder),
                    json.dumps(radiomics_for(config["radiomics"], "mri")),
                    params,
                    json.dumps(spacing),
                )
                rows.append(
                    {
                        "prepared_spacing_mm": f"{spacing[0]:g}",
                        "params": params,
                        "features": measured["features"],
                        "radiomics_s": round(measured["seconds"], 1),
                        "peak_rss_mib": round(measured["peak_mib"]),
                    }
                )
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame, index: bool = False) -> str:
    """A pipe table (tabulate) of ``frame``."""
    return frame.to_markdown(index=index)


def main() -> None:
    """Summarise the benchmarks, measure the scaling, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", type=Path, default=Path("results/benchmarks"))
    parser.add_argument("--sheet", type=Path, default=Path("results/sim_tace/sheet.tsv"))
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-scaling", action="store_true")
    args = parser.parse_args()

    summary = summarise(read_benchmarks(args.benchmarks))
    load = os.getloadavg()[0]
    lines = [
        "## Per-rule measurements of the default run",
        "",
        markdown(summary, index=True),
        "",
    ]
    if not args.no_scaling:
        config = yaml.safe_load(args.config.read_text())
        started = time.perf_counter()
        grid = scaling(args.sheet, config)
        features = radiomics_cost(
            args.sheet, config, (tuple(config["imaging"]["spacing_mm"]), *RADIOMICS_SPACINGS_MM)
        )
        lines += [
            "## Image preparation against input size",
            "",
            f"One training patient of `{args.sheet}` on its own grid and resampled to real CT "
            "grids, `prepare_patient` with the config's settings in a fresh process each.",
            "",
            markdown(grid),
            "",
            "## Radiomics against parameters and prepared spacing",
            "",
            "The same patient prepared at the config's spacing, at the real-data configs' "
            "1.5 mm and at 1 mm, then "
            "`patient_radiomics` with each parameter file, in a fresh process each.",
            "",
            markdown(features),
            "",
            f"Measurements took {time.perf_counter() - started:.0f} s; load average "
            f"{load:.1f} at start; {machine_description()}, "
            f"Python {platform.python_version()}.",
            "",
        ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
