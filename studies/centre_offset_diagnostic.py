"""Do the crops differ by centre beyond the tumours' biology? A simulated cohort's diagnostic.

For each patient's largest tumour crop and each phase: the tumour's mean, SD and mean absolute
Laplacian (high-frequency energy: fine texture and noise), in liver z-units, as the networks
see them. Each statistic is regressed (OLS, statsmodels) on the simulator's latent tumour traits
(``truth/latent.tsv``) and the centre: the centre coefficients are what the acquisition adds at
equal biology, i.e. what a network trained at the development centre meets elsewhere. The crops
are prepared afresh from the sheet's images with the config's imaging settings, once per
``--setting`` ``BIAS/RESOLUTION``: bias correction ``none`` or ``n4``
(``imaging.bias_correction``) and resolution ``none`` (as acquired) or e.g. ``3,3,6`` (blurred to
3 x 3 x 6 mm; ``imaging.resolution_mm``), in a temporary folder. No outcome is read, and nothing
here feeds the workflow (the latent truth exists only for simulated data).

Run from the repository root after the default workflow has simulated the cohort:
``.venv/bin/python studies/centre_offset_diagnostic.py`` (about 3 minutes per setting on
2 cores; the default compares as acquired, N4, 3 x 3 x 6 mm and both). Rewrites
centre_offset_diagnostic.md.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
import yaml
from scipy import ndimage

from hccrad.core.labels import TUMOUR_LABEL
from hccrad.core.versions import cpu_model
from hccrad.imaging.prepare import prepare_patient

REPORT = Path(__file__).with_suffix(".md")
TRAITS = (
    "z_tumour_size",
    "z_arterial_enhancement",
    "z_washout",
    "z_hepatobiliary_hypointensity",
    "z_heterogeneity",
    "z_necrosis",
)


def tumour_statistics(crop_path: Path) -> dict[str, float]:
    """Mean, SD and mean |Laplacian| of the tumour's voxels in each phase of one crop file."""
    with np.load(crop_path, allow_pickle=False) as data:
        image, tumour = data["image"], data["mask"] == TUMOUR_LABEL
        phases = [str(p) for p in data["phases"]]
    row = {"tumour_voxels": float(tumour.sum())}
    for phase, values in zip(phases, image, strict=True):
        inside = values[tumour]
        row[f"{phase}_mean"] = float(inside.mean())
        row[f"{phase}_sd"] = float(inside.std())
        laplacian = ndimage.laplace(values.astype(np.float64))
        row[f"{phase}_laplacian"] = float(np.abs(laplacian[tumour]).mean())
    return row


def largest_tumour_statistics(crops_folder: Path) -> dict[str, float]:
    """The statistics of the patient's crop with the most tumour voxels (what DLTR reads)."""
    rows = [tumour_statistics(path) for path in sorted(crops_folder.glob("*.npz"))]
    if not rows:
        raise FileNotFoundError(f"{crops_folder}: no tumour crop; run the workflow's preparation")
    largest = max(rows, key=lambda row: row["tumour_voxels"])
    return {k: v for k, v in largest.items() if k != "tumour_voxels"}


def centre_effects(stats: pd.DataFrame, latent: pd.DataFrame, centres: pd.Series) -> pd.DataFrame:
    """OLS of each statistic on the latent traits and the centre: the centres' coefficients."""
    data = stats.join(latent[list(TRAITS)]).join(centres.rename("centre"))
    reference = sorted(data["centre"].unique())[0]
    rows = []
    for column in stats.columns:
        formula = f"{column} ~ {' + '.join(TRAITS)} + C(centre, Treatment('{reference}'))"
        fit = smf.ols(formula, data=data).fit()
        phase, statistic = column.rsplit("_", 1)
        for term in fit.params.index:
            if term.startswith("C(centre"):
                rows.append(
                    {
                        "phase": phase,
                        "statistic": statistic,
                        "centre": f"{term.split('[T.')[1].rstrip(']')} - {reference}",
                        "offset": fit.params[term],
                        "t": fit.tvalues[term],
                        "r2": fit.rsquared,
                    }
                )
    return pd.DataFrame(rows)


def _prepare_and_measure(args: tuple[str, pd.Series, dict, str, Path]) -> dict[str, float]:
    """Prepare one patient into `folder` and measure its largest tumour's crop."""
    patient_id, row, imaging_cfg, modality, folder = args
    exclusion = prepare_patient(patient_id, row, imaging_cfg, modality, folder / patient_id)
    if exclusion is not None:
        raise RuntimeError(f"{patient_id} was excluded in preparation: {exclusion}")
    return {"patient_id": patient_id} | largest_tumour_statistics(folder / patient_id / "crops")


def resolution_setting(text: str) -> list[float] | None:
    """`none` or `x,y,z` (mm) as an imaging.resolution_mm value."""
    return None if text == "none" else [float(v) for v in text.split(",")]


def main() -> None:
    """Prepare the cohort under each resolution setting and write the centre offsets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--cohort", default="sim_tace")
    parser.add_argument("--modality", default="mri")
    parser.add_argument(
        "--setting",
        nargs="+",
        default=["none/none", "n4/none", "none/3,3,6", "n4/3,3,6"],
        help="bias correction/resolution pairs, e.g. n4/none or none/3,3,6",
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=REPORT)
    args = parser.parse_args()

    config = yaml.safe_load(args.config.read_text())
    folder = args.results / args.cohort
    sheet = pd.read_csv(folder / "sheet.tsv", sep="\t", index_col="patient_id", dtype=str)
    latent = pd.read_csv(folder / "truth" / "latent.tsv", sep="\t", index_col="patient_id")
    tables = []
    for setting in args.setting:
        bias, resolution = setting.split("/")
        imaging_cfg = config["imaging"] | {
            "bias_correction": {
                **config["imaging"].get("bias_correction", {}),
                args.modality: bias,
            },
            "resolution_mm": resolution_setting(resolution),
        }
        with tempfile.TemporaryDirectory() as tmp:
            work = [(p, row, imaging_cfg, args.modality, Path(tmp)) for p, row in sheet.iterrows()]
            with ProcessPoolExecutor(args.jobs) as pool:
                stats = pd.DataFrame(pool.map(_prepare_and_measure, work)).set_index("patient_id")
        tables.append(centre_effects(stats, latent, sheet["centre"]).assign(setting=setting))
        print(f"{setting}: done")
    wide = pd.concat(tables).pivot_table(
        index=["phase", "statistic", "centre"], columns="setting", values=["offset", "t", "r2"]
    )
    lines = [
        "# Centre offsets of the tumour crops at equal tumour biology (simulated response cohort)",
        "",
        f"- Date: {datetime.date.today()}. CPU: {cpu_model()}. Cohort: `{args.cohort}` of "
        f"`{args.config}` ({len(sheet)} patients; centres "
        f"{', '.join(sorted(sheet['centre'].unique()))}). Script: "
        f"`studies/{Path(__file__).name}`.",
        "- Per phase, the largest tumour's mean, SD and mean |Laplacian| in its crop (liver "
        "z-units), regressed on the six latent tumour traits of the simulation and the centre "
        "(OLS). The offset is the centre's coefficient against the development centre at equal "
        "biology, in liver SDs; |t| above 2 is an offset beyond chance; R2 is the whole "
        "model's. One column per setting `bias correction/resolution`: `none/none` as "
        "acquired, `n4/none` N4 bias-field correction, `none/3,3,6` blurred to 3 x 3 x 6 mm, "
        "`n4/3,3,6` both (`imaging.bias_correction`, `imaging.resolution_mm`).",
        "",
        "| phase | statistic | centre | "
        + " | ".join(f"offset (t), {s} | R2, {s}" for s in args.setting)
        + " |",
        "| --- | --- | --- | " + " | ".join("---: | ---:" for _ in args.setting) + " |",
    ]
    for (phase, statistic, centre), row in wide.iterrows():
        cells = [
            f"{row[('offset', s)]:+.2f} ({row[('t', s)]:+.1f}) | {row[('r2', s)]:.2f}"
            for s in args.setting
        ]
        lines.append(f"| {phase} | {statistic} | {centre} | " + " | ".join(cells) + " |")
    args.output.write_text("\n".join(lines) + "\n")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
