"""Seconds per patient: hccrad's radiomics extraction vs PyRadiomics' command-line batch mode.

Both read the same files: the prepared patients of a workflow run (the default cohort's
resampled, liver-z-scored phases and masks, with the config's parameter file and settings), or
synthetic phantoms when no run is at hand. hccrad runs `load_patient` + `extract_patient` per
patient (tumour and peritumoural regions, every phase) in a process pool; the `pyradiomics` CLI
gets one CSV row (Image, Mask) per phase x region, with the region masks written beforehand (not
timed), and its own `--jobs`. Writes a Markdown table.

    .venv/bin/python benchmarks/radiomics_benchmark.py --n-cases 12 \
        --prepared results/sim_tace/prepared
    .venv/bin/python benchmarks/radiomics_benchmark.py --n-cases 8 --params full
    .venv/bin/python benchmarks/radiomics_benchmark.py --n-cases 2 --params original   # smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk  # noqa: N813

from hccrad.core.seeding import rng_for
from hccrad.core.versions import machine_description
from hccrad.imaging.transform import normalise_patient
from hccrad.imaging.volumes import MRI_PHASES, PatientVolumes, load_patient
from hccrad.imaging.write import write_preprocessed
from hccrad.radiomics.extract import (
    REGIONS,
    extract_patient,
    gather_features,
    params_path,
    region_masks,
)

PHASES = MRI_PHASES
RING_MM = 5.0
SPACING = (1.0, 1.0, 1.0)  # the parameter files' resampledPixelSpacing: no second resampling


def phantom(patient_id: str, seed: int) -> PatientVolumes:
    """A 120 x 120 x 80 mm liver-like phantom with one tumour of 10-25 mm radius, z-scored."""
    rng = rng_for(seed, "radiomics_benchmark", patient_id)
    shape = (80, 120, 120)  # z, y, x at 1 mm
    z, y, x = np.indices(shape, dtype=np.float32)
    liver = ((x - 60) / 50) ** 2 + ((y - 60) / 45) ** 2 + ((z - 40) / 35) ** 2 <= 1
    radius = rng.uniform(10, 25)
    tumour = (x - 60) ** 2 + (y - 55) ** 2 + (z - 40) ** 2 <= radius**2
    labels = np.where(tumour, 2, np.where(liver, 1, 0)).astype(np.uint8)
    mask = sitk.GetImageFromArray(labels)
    mask.SetSpacing(SPACING)
    images = {}
    for phase, tumour_mean in zip(PHASES, (160.0, 110.0, 50.0), strict=True):
        values = rng.normal(20.0, 5.0, shape)
        values[liver] = rng.normal(100.0, 10.0, liver.sum())
        # Smooth texture inside the tumour, so that texture features have something to see.
        texture = sitk.GetArrayFromImage(
            sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(rng.normal(0, 1, shape)), 2.0)
        )
        values[tumour] = tumour_mean + 60.0 * texture[tumour]
        image = sitk.GetImageFromArray(values.astype(np.float32))
        image.CopyInformation(mask)
        images[phase] = image
    volumes = PatientVolumes(patient_id, images, mask)
    return normalise_patient(volumes, "zscore")


def write_cases(n_cases: int, folder: Path, seed: int) -> pd.DataFrame:
    """Write phantoms and region masks; return a sheet with one row per patient."""
    rows = []
    for i in range(n_cases):
        patient_id = f"BENCH_{i + 1:03d}"
        volumes = phantom(patient_id, seed)
        image_paths = {p: folder / f"{patient_id}_{p}.nii.gz" for p in PHASES}
        mask_path = folder / f"{patient_id}_mask.nii.gz"
        write_preprocessed(volumes, image_paths, mask_path)
        regions = region_masks(volumes.mask, REGIONS, ring_mm=RING_MM)
        region_paths = {r: folder / f"{patient_id}_{r}.nii.gz" for r in REGIONS}
        for region, region_mask in regions.items():
            sitk.WriteImage(region_mask, str(region_paths[region]), useCompression=True)
        rows.append(
            {"patient_id": patient_id, "mask": str(mask_path)}
            | {p: str(path) for p, path in image_paths.items()}
            | {f"{r}_mask": str(path) for r, path in region_paths.items()}
        )
    return pd.DataFrame(rows).set_index("patient_id")


def prepared_cases(prepared: Path, n_cases: int, folder: Path) -> pd.DataFrame:
    """Sheet of the first ``n_cases`` prepared patients of a run, with region masks written."""
    rows = []
    # Absolute paths: the CLI resolves relative paths against the batch CSV's folder.
    prepared = prepared.resolve()
    for patient_dir in sorted(p for p in prepared.iterdir() if (p / "mask.nii.gz").exists())[
        :n_cases
    ]:
        patient_id = patient_dir.name
        image_paths = {p: patient_dir / f"{p}.nii.gz" for p in PHASES}
        volumes = load_patient(patient_id, image_paths, patient_dir / "mask.nii.gz")
        regions = region_masks(volumes.mask, REGIONS, ring_mm=RING_MM)
        region_paths = {r: folder / f"{patient_id}_{r}.nii.gz" for r in REGIONS}
        for region, region_mask in regions.items():
            sitk.WriteImage(region_mask, str(region_paths[region]), useCompression=True)
        rows.append(
            {"patient_id": patient_id, "mask": str(patient_dir / "mask.nii.gz")}
            | {p: str(path) for p, path in image_paths.items()}
            | {f"{r}_mask": str(path) for r, path in region_paths.items()}
        )
    return pd.DataFrame(rows).set_index("patient_id")


def workflow_params(config_path: Path, folder: Path) -> str:
    """The config's MRI parameter file with its settings and spacing merged in, as one file."""
    import yaml

    config = yaml.safe_load(config_path.read_text())
    params = yaml.safe_load(
        (config_path.parent.parent / config["radiomics"]["params"]["mri"]).read_text()
    )
    params["setting"] |= dict(config["radiomics"]["settings"]["mri"])
    params["setting"]["resampledPixelSpacing"] = config["imaging"]["spacing_mm"]
    path = folder / "workflow_params.yaml"
    path.write_text(yaml.safe_dump(params))
    return str(path)


def extract_one(patient_id: str, row: dict[str, str], params: str) -> pd.DataFrame:
    """hccrad's per-patient work: read and check the files, extract every phase x region."""
    volumes = load_patient(patient_id, {p: row[p] for p in PHASES}, row["mask"])
    features, _ = extract_patient(volumes, params, regions=REGIONS, ring_mm=RING_MM)
    return features


def run_hccrad(sheet: pd.DataFrame, params: str, processes: int) -> tuple[float, pd.DataFrame]:
    """Wall-clock seconds and the gathered table for hccrad with a process pool."""
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=processes) as pool:
        futures = [
            pool.submit(extract_one, patient_id, row.to_dict(), params)
            for patient_id, row in sheet.iterrows()
        ]
        table = gather_features(f.result() for f in futures)
    return time.perf_counter() - start, table


def run_cli(
    sheet: pd.DataFrame, params: str, jobs: int, folder: Path
) -> tuple[float, pd.DataFrame]:
    """Wall-clock seconds and the output of `pyradiomics <batch.csv> --jobs N`."""
    batch = pd.DataFrame(
        [
            {"Image": row[phase], "Mask": row[f"{region}_mask"], "case": f"{pid}|{phase}|{region}"}
            for pid, row in sheet.iterrows()
            for phase in PHASES
            for region in REGIONS
        ]
    )
    batch_path, out_path = folder / f"batch_{jobs}.csv", folder / f"cli_out_{jobs}.csv"
    batch.to_csv(batch_path, index=False)
    out_path.unlink(missing_ok=True)
    cli = shutil.which("pyradiomics", path=str(Path(sys.executable).parent)) or "pyradiomics"
    command = [cli, str(batch_path), "--param", params, "--jobs", str(jobs)]
    command += ["--out", str(out_path), "--format", "csv", "--logging-level", "WARNING"]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start, pd.read_csv(out_path)


def cli_as_wide(cli_output: pd.DataFrame) -> pd.DataFrame:
    """CLI rows (one per phase x region) reshaped to hccrad's patients x features layout."""
    rows: dict[str, dict[str, float]] = {}
    features = [c for c in cli_output.columns if c.startswith(("original_", "log-", "wavelet"))]
    for _, row in cli_output.iterrows():
        patient_id, phase, region = row["case"].split("|")
        rows.setdefault(patient_id, {}).update(
            {f"{phase}_{region}_{name}": float(row[name]) for name in features}
        )
    return pd.DataFrame.from_dict(rows, orient="index")


def max_relative_difference(ours: pd.DataFrame, theirs: pd.DataFrame) -> float:
    """Largest |a - b| / max(|b|, 1e-12) over the features and patients both tables have."""
    columns = ours.columns.intersection(theirs.columns)
    a = ours.loc[theirs.index, columns].to_numpy(float)
    b = theirs[columns].to_numpy(float)
    return float(np.nanmax(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def radiomics_version() -> str:
    """The installed PyRadiomics version."""
    from importlib.metadata import version

    return version("pyradiomics")


def main() -> None:
    """Run both tools with 1 and 2 processes and write the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cases", type=int, default=8)
    parser.add_argument("--params", choices=("full", "original"), default="full")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--prepared", type=Path, help="a run's results/<cohort>/prepared")
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".md"))
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hccrad_radiomics_bench_") as tmp:
        folder = Path(tmp)
        if args.prepared:
            params = workflow_params(args.config, folder)
            sheet = prepared_cases(args.prepared, args.n_cases, folder)
            source = f"prepared patients of `{args.prepared}` with `{args.config}`'s settings"
        else:
            params = str(params_path("mri", original_only=args.params == "original"))
            sheet = write_cases(args.n_cases, folder, args.seed)
            source = "synthetic phantoms"
        results, difference = [], 0.0
        for processes in args.processes:
            seconds, ours = run_hccrad(sheet, params, processes)
            results.append(("hccrad extract_patient (process pool)", processes, seconds))
            cli_seconds, cli_output = run_cli(sheet, params, processes, folder)
            results.append(("pyradiomics CLI batch (--jobs)", processes, cli_seconds))
            difference = max(difference, max_relative_difference(ours, cli_as_wide(cli_output)))
            print(f"{processes} process(es): hccrad {seconds:.1f} s, CLI {cli_seconds:.1f} s")

    n_extractions = args.n_cases * len(PHASES) * len(REGIONS)
    lines = [
        "# Radiomics extraction benchmark",
        "",
        f"`{' '.join(sys.argv[1:])}`: {args.n_cases} patients ({source}) x {len(PHASES)} MRI "
        f"phases x {len(REGIONS)} regions = {n_extractions} PyRadiomics extractions, "
        f"{ours.shape[1]} features per patient.",
        f"Machine: {machine_description()}, "
        f"Python {platform.python_version()}, PyRadiomics {radiomics_version()}; load average "
        f"before the run {load_before:.1f} (other processes share the cores: times are upper "
        f"bounds). Wall-clock time of the whole set, {time.strftime('%Y-%m-%d')}.",
        "",
        "| method | processes | whole set (s) | s / patient |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {method} | {processes} | {seconds:.1f} | {seconds / args.n_cases:.2f} |"
            for method, processes, seconds in results
        ),
        "",
        f"Largest relative difference between the two tools' feature values: {difference:.2e}.",
        "The CLI's region masks were written before timing; hccrad's time includes reading and",
        "checking the files and computing the peritumoural ring.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
