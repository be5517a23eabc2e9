"""Wall time of the default DLTR selection (every architecture's CV, then the refit) on a device.

Run from the repository root after the default workflow has prepared the crops:
``.venv/bin/python benchmarks/deep_selection_benchmark.py --device cpu`` (a few minutes on
2 cores) or, on a GPU machine, ``--device cuda``. Each run appends one row to
benchmarks/deep_selection_benchmark.md: the device, threads, wall time, the winner and the mean
CV AUC of each architecture. Only the training patients' crops are read (``--results`` may be a
folder holding just ``<cohort>/sheet.tsv`` and those patients' ``prepared/<patient>/``).

``--set key=value`` (repeatable, YAML values) changes one setting of the `deep:` block, e.g.
``--set width=0.5 --set tumour_margin_mm=null`` (``--set seed=1``: the config's seed), and
``--cv-only`` skips the refit: how the default's settings were compared, on the training
split's CV alone.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from hccrad.core.script_options import (
    add_settings_options,
    cohort_parser,
    device_name,
    overrides,
    with_row,
)
from hccrad.core.torch_runtime import resolve_device
from hccrad.deep import dltr
from hccrad.deep.select import choose_winner, cross_validate, select_and_refit, selection_summary
from hccrad.imaging.batches import patient_folders

REPORT = Path(__file__).with_suffix(".md")
HEADER = (
    "# DLTR selection benchmark (default config, default simulated cohort)\n\n"
    "One row per run of `hccrad.deep.select.select_and_refit` with the `deep:` block of "
    "config/config.yaml (architectures x folds CV on the training split, then the winner's "
    'refit), on the crops that the default workflow prepared. "CV only" rows skip the refit; '
    "their settings column lists what differs from config/config.yaml. CPU runs are "
    "bit-reproducible; CUDA runs use mixed precision and cuDNN autotuning, so their AUCs "
    "differ slightly.\n\n"
    "| date | device | threads | endpoint | training patients | settings | wall time, s "
    "| winner | mean CV AUC per architecture |\n"
    "| --- | --- | ---: | --- | ---: | --- | ---: | --- | --- |\n"
)


def arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = cohort_parser(__doc__.splitlines()[0], REPORT)
    add_settings_options(parser)
    parser.add_argument("--cv-only", action="store_true", help="cross-validation, no refit")
    return parser.parse_args()


def main() -> None:
    """Run the selection once and append its row to the report."""
    args = arguments()
    torch.set_num_threads(args.threads)
    settings = yaml.safe_load(args.config.read_text())
    changed = overrides(args.set)
    # `seed` is the config's top-level seed (folds, inner splits, weights, augmentation), which
    # deep_config sets last: take it from --set rather than let the deep: block drop it.
    deep_settings = {k: v for k, v in changed.items() if k != "seed"}
    config = dltr.deep_config(
        {**settings["deep"], **deep_settings, "device": args.device},
        changed.get("seed", settings["seed"]),
    )
    # pandas, not hccrad.cohorts.sheet.read_sheet: GPU machines may lack the schema libraries.
    sheet = pd.read_csv(
        args.results / args.cohort / "sheet.tsv", sep="\t", index_col="patient_id", dtype=str
    )
    train_ids = list(sheet.index[sheet["split"] == "train"])
    folders = patient_folders(sorted((args.results / args.cohort / "prepared").iterdir()))
    crops, excluded = dltr.cohort_crops(folders, train_ids, config)
    train = dltr.training_sheet(sheet, excluded)
    started = time.perf_counter()
    if args.cv_only:
        table = cross_validate(train, crops, config, endpoint=args.endpoint)
        winner = f"{choose_winner(table)} (CV only)"
    else:
        selection = select_and_refit(train, crops, config, endpoint=args.endpoint)
        table, winner = selection.table, selection.winner
    seconds = time.perf_counter() - started
    means = ", ".join(
        f"{row.architecture} {row.mean_auc:.3f}" for row in selection_summary(table).itertuples()
    )
    described = ", ".join(f"{k} {json.dumps(v)}" for k, v in changed.items()) or "as config"
    row = (
        f"| {datetime.date.today().isoformat()} | {device_name(resolve_device(args.device))} "
        f"| {args.threads} | {args.endpoint} | {len(train)} | {described} | {seconds:.0f} "
        f"| {winner} | {means} |\n"
    )
    text = args.output.read_text() if args.output.exists() else HEADER
    args.output.write_text(with_row(text, row))
    print(pd.DataFrame(table).to_string(), "\n", row)


if __name__ == "__main__":
    main()
