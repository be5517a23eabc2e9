"""Does acquisition-shift augmentation make DLTR robust to other centres? Training CV only.

The external centres of a study scan with thicker slices, more noise and other contrast timing.
This script asks whether training with those shifts simulated (``hccrad.deep.config.DeepConfig``
options ``blur_prob``, ``noise_prob``, ``phase_wise_intensity``) keeps a network's cross-validated
AUC on the training split and raises it on the same held-out folds after a fixed, independent
"acquisition shift" (slices averaged in pairs, i.e. twice as thick; Gaussian noise; each phase
scaled on its own). No internal-test or external patient is read: the choice of the default
augmentation must not see them.

Run from the repository root after the default workflow has prepared the crops:
``.venv/bin/python studies/deep_augmentation_benchmark.py`` (CPU, about 5 minutes per
variant on 2 idle cores). Appends one row per variant to deep_augmentation_benchmark.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.metrics import roc_auc_score

from hccrad.core.script_options import cohort_parser, with_row
from hccrad.deep import dltr
from hccrad.deep.config import DeepConfig
from hccrad.deep.crops import CropSet
from hccrad.deep.predict import predict_scores
from hccrad.deep.select import cross_validate_networks
from hccrad.deep.train import training_labels
from hccrad.imaging.batches import patient_folders

REPORT = Path(__file__).with_suffix(".md")
HEADER = (
    "# Acquisition-shift augmentation (default config, training-split CV only)\n\n"
    "One row per variant of the `deep:` block: the mean CV AUC of one architecture over the "
    "folds of the training split, on the held-out folds as they are (clean) and after a fixed "
    "acquisition shift that training never sees in this form (slices averaged in pairs, "
    "Gaussian noise, each phase scaled on its own; seeded). No internal-test or external "
    "patient is read. CPU, bit-reproducible. The settings name the endpoint, seed and shift "
    "(`--shift`: acquisition; timing, two virtual centres' arterial phase scaled; centre, "
    "the acquisition shift on a random half of the fold).\n\n"
    "| date | architecture | variant | settings | mean CV AUC clean | mean CV AUC shifted "
    "| fold AUCs clean / shifted | wall time, s |\n"
    "| --- | --- | --- | --- | ---: | ---: | --- | ---: |\n"
)
VARIANTS: dict[str, dict[str, object]] = {
    "default": {},
    "acquisition": {
        "phase_wise_intensity": True,
        "blur_prob": 0.3,
        "noise_prob": 0.3,
        "noise_std": 0.1,
    },
    # Contrast timing: each phase scaled on its own by 0.6-1.4 in most training crops.
    "timing": {"phase_wise_intensity": True, "intensity_scale": 0.4, "intensity_prob": 0.8},
}
# Arterial-phase scale of the two virtual centres of the "timing" shift (early, late arterial).
TIMING_FACTORS = (0.6, 1.2)


def arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = cohort_parser(__doc__.splitlines()[0], REPORT)
    parser.add_argument("--architecture", default="resnet18")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--shift", default="acquisition", choices=list(SHIFTS))
    parser.add_argument("--seed", type=int, default=None, help="config seed (default: config's)")
    return parser.parse_args()


def acquisition_shift(crops: CropSet, seed: int, noise_sd: float = 0.1) -> CropSet:
    """The crops as a thick-slice, noisier, differently timed scanner would give them."""
    rng = np.random.default_rng(seed)
    images = crops.images.copy()
    # Twice the slice thickness: each pair of slices replaced by its mean (nearest upsampling).
    depth = images.shape[2] - images.shape[2] % 2
    pairs = images[:, :, :depth].reshape(*images.shape[:2], depth // 2, 2, *images.shape[3:])
    images[:, :, :depth] = np.repeat(pairs.mean(axis=3), 2, axis=2)
    scale = rng.uniform(0.85, 1.15, size=images.shape[:2])[..., None, None, None]
    images = images * scale + rng.normal(0.0, noise_sd, size=images.shape)
    return dataclasses.replace(crops, images=images.astype(np.float32))


def timing_shift(crops: CropSet, seed: int) -> CropSet:
    """The crops split at random between two virtual centres whose arterial phase is scaled.

    A shift common to all held-out crops hardly moves their AUC; pooling patients from centres
    with other contrast timings could offset their scores against each other, which this tests.
    """
    rng = np.random.default_rng(seed)
    factors = rng.choice(TIMING_FACTORS, size=len(crops))
    images = crops.images.copy()
    arterial = crops.phases.index("arterial")
    images[:, arterial] *= factors[:, None, None, None].astype(np.float32)
    return dataclasses.replace(crops, images=images)


def centre_shift(crops: CropSet, seed: int) -> CropSet:
    """A random half of the crops from a second, virtual centre (`acquisition_shift`), pooled.

    The acquisition shift applied to every held-out crop alike asks whether the network's
    ranking survives it; applied to half, whether it offsets one centre's scores from the
    other's.
    """
    rng = np.random.default_rng(seed)
    moved = rng.permutation(len(crops))[: len(crops) // 2]
    shifted = acquisition_shift(crops, seed)
    images = crops.images.copy()
    images[moved] = shifted.images[moved]
    return dataclasses.replace(crops, images=images)


SHIFTS = {"acquisition": acquisition_shift, "timing": timing_shift, "centre": centre_shift}


def fold_aucs(
    train_sheet: pd.DataFrame,
    crops: CropSet,
    config: DeepConfig,
    endpoint: str,
    architecture: str,
    shift: str = "acquisition",
) -> tuple[list[float], list[float]]:
    """Held-out AUC of each fold on clean and on shifted crops (deep selection's own CV)."""
    config = dataclasses.replace(config, architectures=(architecture,))
    table, held_out, networks = cross_validate_networks(
        train_sheet, crops, config, endpoint=endpoint
    )
    labels = training_labels(train_sheet, endpoint)
    clean, shifted = table["auc"].tolist(), []
    for fold, model in enumerate(networks[architecture], start=1):
        held = crops.subset(held_out.loc[held_out["fold"] == fold, "patient_id"])
        y = labels.loc[held.patients].to_numpy()
        moved = SHIFTS[shift](held, seed=fold)
        shifted.append(roc_auc_score(y, predict_scores(model, moved, device="cpu")))
    return clean, shifted


def main() -> None:
    """Cross-validate each variant and append its row to the report."""
    args = arguments()
    torch.set_num_threads(args.threads)
    settings = yaml.safe_load(args.config.read_text())
    sheet = pd.read_csv(
        args.results / args.cohort / "sheet.tsv", sep="\t", index_col="patient_id", dtype=str
    )
    train_ids = list(sheet.index[sheet["split"] == "train"])
    folders = patient_folders(sorted((args.results / args.cohort / "prepared").iterdir()))
    seed = settings["seed"] if args.seed is None else args.seed
    base = dltr.deep_config({**settings["deep"], "device": "cpu"}, seed)
    crops, excluded = dltr.cohort_crops(folders, train_ids, base)
    train_sheet = dltr.training_sheet(sheet, excluded)
    if not args.output.exists():
        args.output.write_text(HEADER)
    for name in args.variants:
        config = dataclasses.replace(base, **VARIANTS[name])
        started = time.perf_counter()
        clean, shifted = fold_aucs(
            train_sheet, crops, config, args.endpoint, args.architecture, args.shift
        )
        seconds = time.perf_counter() - started
        settings_text = ", ".join(f"{k} {v}" for k, v in VARIANTS[name].items()) or "as config"
        settings_text += f"; {args.endpoint}, seed {seed}, {args.shift} shift"
        folds_text = " ".join(f"{c:.2f}/{s:.2f}" for c, s in zip(clean, shifted, strict=True))
        row = (
            f"| {datetime.date.today().isoformat()} | {args.architecture} | {name} "
            f"| {settings_text} | {np.mean(clean):.3f} | {np.mean(shifted):.3f} "
            f"| {folds_text} | {seconds:.0f} |\n"
        )
        args.output.write_text(with_row(args.output.read_text(), row))
        print(row, end="", flush=True)


if __name__ == "__main__":
    main()
